package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/pki"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
)

// AuditCLIConfig is what strata-audit reads (prefix STRATA_AUDIT_).
type AuditCLIConfig struct {
	Addr string `env:"ADDR, default=127.0.0.1:7101"`
	Cert string `env:"CERT, required"`
	Key  string `env:"KEY, required"`
	CA   string `env:"CA, required"`
	// ServerName is the name in Base A's certificate (default "base-a").
	ServerName string `env:"SERVER_NAME, default=base-a"`
}

const auditUsage = `usage: strata-audit list [-cpf C] [-partner P] [-purpose P] [-outcome O] [-from T] [-to T] [-limit N]
       strata-audit export [filters as for list]   (JSON lines, every page)
       strata-audit verify [-from SEQ] [-to SEQ]   (exit status 1 on tampering)
times are RFC 3339; connection: STRATA_AUDIT_ADDR, STRATA_AUDIT_CERT, STRATA_AUDIT_KEY, STRATA_AUDIT_CA`

// RunAuditCLI runs strata-audit and returns its exit status: 0 fine,
// 1 the log failed verification, 2 usage or connection errors.
func RunAuditCLI(ctx context.Context, l config.Lookuper, args []string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "strata-audit:", err)
		return 2
	}
	if len(args) == 0 {
		return fail(errors.New(auditUsage))
	}
	cmd := args[0]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cpf := fs.String("cpf", "", "CPF")
	partner := fs.String("partner", "", "partner id")
	purpose := fs.String("purpose", "", "credit_analysis, fraud_prevention, collection or consumer_request")
	outcome := fs.String("outcome", "", "e.g. allowed, denied_expired")
	from := fs.String("from", "", "list/export: RFC 3339 start; verify: first seq")
	to := fs.String("to", "", "list/export: RFC 3339 end; verify: last seq")
	limit := fs.Int("limit", 100, "entries to list")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var cfg AuditCLIConfig
	if err := config.Load(ctx, "STRATA_AUDIT_", &cfg, l); err != nil {
		return fail(err)
	}
	tlsCfg, err := pki.ClientConfig(pki.Files{Cert: cfg.Cert, Key: cfg.Key, CA: cfg.CA}, cfg.ServerName)
	if err != nil {
		return fail(err)
	}
	conn, err := grpcclient.New(cfg.Addr, grpcclient.Options{TLS: tlsCfg, DefaultTimeout: 2 * time.Minute})
	if err != nil {
		return fail(err)
	}
	defer func() { _ = conn.Close() }()
	client := baseav1.NewAuditServiceClient(conn)

	switch cmd {
	case "verify":
		var f, t int64
		if *from != "" {
			if _, err := fmt.Sscan(*from, &f); err != nil {
				return fail(errors.New("-from must be a sequence number"))
			}
		}
		if *to != "" {
			if _, err := fmt.Sscan(*to, &t); err != nil {
				return fail(errors.New("-to must be a sequence number"))
			}
		}
		r, err := client.VerifyChain(ctx, &baseav1.VerifyChainRequest{FromSeq: f, ToSeq: t})
		if err != nil {
			return fail(err)
		}
		out, _ := json.Marshal(map[string]any{"ok": r.GetOk(), "checked_entries": r.GetCheckedEntries(),
			"first_bad_entry": r.GetFirstBadEntry(), "problem": r.GetProblem(), "checkpoints_verified": r.GetCheckpointsVerified(),
			"purged_through": r.GetPurgedThrough()})
		fmt.Fprintln(stdout, string(out))
		if !r.GetOk() {
			fmt.Fprintf(stderr, "strata-audit: TAMPERING DETECTED at entry seq %d: %s\n", r.GetFirstBadEntry(), r.GetProblem())
			return 1
		}
		return 0
	case "list", "export":
		req := &baseav1.ListAccessLogsRequest{Cpf: *cpf, PartnerId: *partner, PageSize: int32(min(*limit, 500))}
		if *purpose != "" {
			v, ok := baseav1.Purpose_value["PURPOSE_"+upper(*purpose)]
			if !ok {
				return fail(fmt.Errorf("unknown purpose %q", *purpose))
			}
			req.Purpose = baseav1.Purpose(v)
		}
		if *outcome != "" {
			v, ok := baseav1.Outcome_value["OUTCOME_"+upper(*outcome)]
			if !ok {
				return fail(fmt.Errorf("unknown outcome %q", *outcome))
			}
			req.Outcome = baseav1.Outcome(v)
		}
		for _, p := range []struct {
			s   string
			dst **timestamppb.Timestamp
		}{{*from, &req.From}, {*to, &req.To}} {
			if p.s != "" {
				t, err := time.Parse(time.RFC3339, p.s)
				if err != nil {
					return fail(fmt.Errorf("times must be RFC 3339: %w", err))
				}
				*p.dst = timestamppb.New(t)
			}
		}
		if cmd == "export" {
			req.PageSize = 500
		}
		m := protojson.MarshalOptions{UseProtoNames: true}
		for {
			resp, err := client.ListAccessLogs(ctx, req)
			if err != nil {
				return fail(err)
			}
			for _, e := range resp.GetEntries() {
				b, _ := m.Marshal(e)
				fmt.Fprintln(stdout, string(b))
			}
			if cmd == "list" || resp.GetNextPageToken() == "" {
				return 0
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	return fail(errors.New(auditUsage))
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
