package app

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/pki"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/grpcapi"
)

// ExportConfig is what baseb-export reads (prefix BASEB_EXPORT_).
type ExportConfig struct {
	Addr  string        `env:"ADDR, default=127.0.0.1:7201"`
	Token config.Secret `env:"TOKEN, required"`
	// The tool's client certificate (identity "baseb-export"), its key and
	// the CA Base B's certificate chains to.
	TLSCert    string `env:"TLS_CERT, required"`
	TLSKey     string `env:"TLS_KEY, required"`
	TLSCA      string `env:"TLS_CA, required"`
	ServerName string `env:"SERVER_NAME, default=base-b"`
}

// RunExport streams every profile's features (or those updated in a time
// window) to out as CSV or JSON lines, with a progress bar on progress. With
// -cursor-file it records the last row written and resumes from it, so an
// interrupted export continues with no gap and no duplicate.
func RunExport(ctx context.Context, l config.Lookuper, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("baseb-export", flag.ContinueOnError)
	fs.SetOutput(progress)
	format := fs.String("format", "csv", "csv or jsonl")
	cursorFile := fs.String("cursor-file", "", "file holding the resume cursor (read at start, updated as rows are written)")
	batch := fs.Int("batch", 500, "rows per store page")
	from := fs.String("from", "", "only profiles updated at or after this time (RFC 3339 or YYYY-MM-DD)")
	to := fs.String("to", "", "only profiles updated before this time (RFC 3339 or YYYY-MM-DD)")
	mode := fs.String("progress", "auto", "auto (a bar on a terminal, lines otherwise), bar, lines or none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "csv" && *format != "jsonl" {
		return errors.New("-format must be csv or jsonl")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	req, err := exportRequest(*batch, *from, *to, *cursorFile)
	if err != nil {
		return err
	}
	if *mode, err = progressMode(*mode, progress); err != nil {
		return err
	}
	var cfg ExportConfig
	if err := config.Load(ctx, "BASEB_EXPORT_", &cfg, l); err != nil {
		return err
	}
	stream, total, closeConn, err := openExport(ctx, cfg, req)
	if err != nil {
		return err
	}
	defer closeConn()
	var bar *progressbar.ProgressBar
	if *mode == "bar" {
		bar = newBar(total, progress)
	}
	w := &rowWriter{out: out, jsonl: *format == "jsonl", csv: csv.NewWriter(out), header: req.GetCursor() == "",
		m: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}}
	start, n := time.Now(), 0
	for {
		row, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := w.write(row); err != nil {
			return err
		}
		n++
		if *cursorFile != "" {
			if err := os.WriteFile(*cursorFile, []byte(row.GetCursor()), 0o600); err != nil {
				return err
			}
		}
		switch {
		case bar != nil:
			if total >= 0 && int64(n) > total { // profiles added while exporting
				total = int64(n)
				bar.ChangeMax64(total)
			}
			_ = bar.Add(1)
		case *mode == "lines" && n%10000 == 0:
			fmt.Fprintf(progress, "exported %d of %s rows (%.0f rows/s)\n", n, count(total), float64(n)/time.Since(start).Seconds())
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if *mode != "none" {
		fmt.Fprintf(progress, "exported %d rows in %s\n", n, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func count(total int64) string {
	if total < 0 {
		return "?"
	}
	return strconv.FormatInt(total, 10)
}

func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

// exportRequest builds the request from -batch, -from, -to and the
// cursor kept in -cursor-file (resuming an interrupted export).
func exportRequest(batch int, from, to, cursorFile string) (*basebv1.ExportFeaturesRequest, error) {
	req := &basebv1.ExportFeaturesRequest{BatchSize: int32(batch)}
	if cursorFile != "" {
		if b, err := os.ReadFile(cursorFile); err == nil {
			req.Cursor = strings.TrimSpace(string(b))
		}
	}
	for _, w := range []struct {
		flag, v string
		dst     **timestamppb.Timestamp
	}{{"-from", from, &req.UpdatedFrom}, {"-to", to, &req.UpdatedTo}} {
		if w.v == "" {
			continue
		}
		t, err := parseWhen(w.v)
		if err != nil {
			return nil, fmt.Errorf("%s: want RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31)", w.flag)
		}
		*w.dst = timestamppb.New(t)
	}
	if req.UpdatedFrom != nil && req.UpdatedTo != nil && !req.UpdatedFrom.AsTime().Before(req.UpdatedTo.AsTime()) {
		return nil, errors.New("-from must be before -to")
	}
	return req, nil
}

// progressMode resolves -progress: auto is a bar on a terminal, lines
// otherwise.
func progressMode(mode string, progress io.Writer) (string, error) {
	switch mode {
	case "auto":
		if f, ok := progress.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return "bar", nil
		}
		return "lines", nil
	case "bar", "lines", "none":
		return mode, nil
	default:
		return "", errors.New("-progress must be auto, bar, lines or none")
	}
}

// rowWriter writes exported rows as JSON lines or as CSV, with a header
// unless the export resumes.
type rowWriter struct {
	out    io.Writer
	jsonl  bool
	csv    *csv.Writer
	header bool
	m      protojson.MarshalOptions
}

func (w *rowWriter) write(row *basebv1.ExportFeaturesResponse) error {
	if w.jsonl {
		b, _ := w.m.Marshal(row)
		_, err := fmt.Fprintln(w.out, string(b))
		return err
	}
	if w.header {
		_ = w.csv.Write([]string{"cpf", "age", "total_assets_cents", "asset_count", "monthly_income_cents", "income_source_count",
			"open_debt_count", "open_debt_amount_cents", "score", "updated_at"})
		w.header = false
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	_ = w.csv.Write([]string{row.GetCpf(), i(int64(row.GetAge())), i(row.GetTotalAssetsCents()), i(int64(row.GetAssetCount())),
		i(row.GetMonthlyIncomeCents()), i(int64(row.GetIncomeSourceCount())), i(int64(row.GetOpenDebtCount())),
		i(row.GetOpenDebtAmountCents()), i(int64(row.GetScore())), row.GetUpdatedAt().AsTime().Format(time.RFC3339)})
	w.csv.Flush()
	return w.csv.Error()
}

// openExport starts the export stream with the token, and reads the count
// of rows to come the server sends first (-1 when absent: the bar spins).
func openExport(ctx context.Context, cfg ExportConfig, req *basebv1.ExportFeaturesRequest) (grpc.ServerStreamingClient[basebv1.ExportFeaturesResponse], int64, func(), error) {
	tlsCfg, err := pki.ClientConfig(pki.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA}, cfg.ServerName)
	if err != nil {
		return nil, 0, nil, err
	}
	conn, err := grpcclient.New(cfg.Addr, grpcclient.Options{TLS: tlsCfg, DefaultTimeout: time.Hour})
	if err != nil {
		return nil, 0, nil, err
	}
	closeConn := func() { _ = conn.Close() }
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cfg.Token.Reveal())
	stream, err := basebv1.NewProfileServiceClient(conn).ExportFeatures(ctx, req)
	if err != nil {
		closeConn()
		return nil, 0, nil, err
	}
	total := int64(-1)
	if md, err := stream.Header(); err == nil {
		if v := md.Get(grpcapi.ExportTotalHeader); len(v) == 1 {
			if t, err := strconv.ParseInt(v[0], 10, 64); err == nil && t >= 0 {
				total = t
			}
		}
	}
	return stream, total, closeConn, nil
}

func newBar(total int64, progress io.Writer) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total, progressbar.OptionSetWriter(progress), progressbar.OptionSetDescription("exporting"),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
		progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(progress) }))
}
