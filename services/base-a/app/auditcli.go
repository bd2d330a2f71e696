package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/input"
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
	// VerifierKey checks signed tree heads (note verifier key, or a file
	// holding it): public material, obtained from the bureau out of band.
	VerifierKey string `env:"VERIFIER_KEY"`
	// State is where verify keeps the last head it verified (like a
	// transparency-log monitor); empty: nothing kept.
	State string `env:"STATE"`
	// Witnesses are files of witnessed heads (comma-separated; one signed
	// head per line, base64), e.g. the local stack's append-only file.
	Witnesses string `env:"WITNESSES"`
}

const auditUsage = `usage: strata-audit list [-cpf C] [-partner P] [-purpose P] [-outcome O] [-from T] [-to T] [-limit N]
       strata-audit export [filters as for list]   (JSON lines, every page)
       strata-audit export-log [-o FILE]           (the verifiable log: entries, tree hashes, signed heads)
       strata-audit verify [-full]                 (exit status 1 on tampering)
       strata-audit verify -offline FILE -public-key KEY [-witness FILES]
       strata-audit subject-report CPF            (through the gateway: STRATA_GATEWAY_URL, STRATA_AUDITOR_KEY)
times are RFC 3339; connection: STRATA_AUDIT_ADDR, STRATA_AUDIT_CERT, STRATA_AUDIT_KEY, STRATA_AUDIT_CA;
verify: STRATA_AUDIT_VERIFIER_KEY (public), STRATA_AUDIT_STATE (last verified head), STRATA_AUDIT_WITNESSES (witnessed heads)`

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
	full := fs.Bool("full", false, "verify: start from the beginning, not from the last verified head")
	offline := fs.String("offline", "", "verify: an exported log file (export-log), with public material only")
	publicKey := fs.String("public-key", "", "verify -offline: the verifier key (or a file holding it)")
	outFile := fs.String("o", "", "export-log: output file (default stdout)")
	witness := fs.String("witness", "", "verify -offline: files of witnessed heads (comma-separated)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if cmd == "verify" && *offline != "" {
		return verifyOffline(*offline, *publicKey, *witness, stdout, stderr)
	}
	if cmd == "subject-report" {
		if fs.NArg() != 1 {
			return fail(errors.New("usage: strata-audit subject-report CPF"))
		}
		var g reportConfig
		if err := config.Load(ctx, "STRATA_", &g, l); err != nil {
			return fail(err)
		}
		return subjectReport(ctx, g, fs.Arg(0), stdout, stderr)
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
		return verifyOnline(ctx, client, cfg, *full, stdout, stderr)
	case "export-log":
		if err := exportLog(ctx, client, *outFile, stdout); err != nil {
			return fail(err)
		}
		return 0
	case "list", "export":
		req, err := listRequest(*cpf, *partner, *purpose, *outcome, *from, *to, *limit)
		if err != nil {
			return fail(err)
		}
		if err := listLogs(ctx, client, req, cmd == "export", stdout); err != nil {
			return fail(err)
		}
		return 0
	}
	return fail(errors.New(auditUsage))
}

// exportLog writes every page of the verifiable log as JSON lines to file
// (stdout when empty).
func exportLog(ctx context.Context, client baseav1.AuditServiceClient, file string, stdout io.Writer) error {
	out := stdout
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		out = f
	}
	var after int64
	for {
		page, err := client.ExportLog(ctx, &baseav1.ExportLogRequest{AfterSeq: after, PageSize: 5000})
		if err != nil {
			return err
		}
		b, err := protojson.Marshal(page)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, string(b))
		if n := len(page.GetEntries()); n > 0 {
			after = page.GetEntries()[n-1].GetSeq()
		}
		if !page.GetMore() {
			return nil
		}
	}
}

// listRequest builds the access-log query from the command's flags.
func listRequest(cpf, partner, purpose, outcome, from, to string, limit int) (*baseav1.ListAccessLogsRequest, error) {
	req := &baseav1.ListAccessLogsRequest{Cpf: cpf, PartnerId: partner, PageSize: int32(min(limit, 500))}
	if purpose != "" {
		v, ok := baseav1.Purpose_value["PURPOSE_"+input.UpperASCII(purpose)]
		if !ok {
			return nil, fmt.Errorf("unknown purpose %q", purpose)
		}
		req.Purpose = baseav1.Purpose(v)
	}
	if outcome != "" {
		v, ok := baseav1.Outcome_value["OUTCOME_"+input.UpperASCII(outcome)]
		if !ok {
			return nil, fmt.Errorf("unknown outcome %q", outcome)
		}
		req.Outcome = baseav1.Outcome(v)
	}
	for _, p := range []struct {
		s   string
		dst **timestamppb.Timestamp
	}{{from, &req.From}, {to, &req.To}} {
		if p.s != "" {
			t, err := time.Parse(time.RFC3339, p.s)
			if err != nil {
				return nil, fmt.Errorf("times must be RFC 3339: %w", err)
			}
			*p.dst = timestamppb.New(t)
		}
	}
	return req, nil
}

// listLogs prints the entries req selects as JSON lines: one page, or
// every page when all (export).
func listLogs(ctx context.Context, client baseav1.AuditServiceClient, req *baseav1.ListAccessLogsRequest, all bool, stdout io.Writer) error {
	if all {
		req.PageSize = 500
	}
	m := protojson.MarshalOptions{UseProtoNames: true}
	for {
		resp, err := client.ListAccessLogs(ctx, req)
		if err != nil {
			return err
		}
		for _, e := range resp.GetEntries() {
			b, _ := m.Marshal(e)
			fmt.Fprintln(stdout, string(b))
		}
		if !all || resp.GetNextPageToken() == "" {
			return nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}
