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

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcclient"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
)

// ExportConfig is what baseb-export reads (prefix BASEB_EXPORT_).
type ExportConfig struct {
	Addr  string        `env:"ADDR, default=127.0.0.1:7201"`
	Token config.Secret `env:"TOKEN, required"`
}

// RunExport streams every profile's features to out as CSV or JSON lines,
// with a progress line on progress. With -cursor-file it records the last
// row written and resumes from it, so an interrupted export continues with
// no gap and no duplicate.
func RunExport(ctx context.Context, l config.Lookuper, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("baseb-export", flag.ContinueOnError)
	fs.SetOutput(progress)
	format := fs.String("format", "csv", "csv or jsonl")
	cursorFile := fs.String("cursor-file", "", "file holding the resume cursor (read at start, updated as rows are written)")
	batch := fs.Int("batch", 500, "rows per store page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "csv" && *format != "jsonl" {
		return errors.New("-format must be csv or jsonl")
	}
	var cfg ExportConfig
	if err := config.Load(ctx, "BASEB_EXPORT_", &cfg, l); err != nil {
		return err
	}
	conn, err := grpcclient.New(cfg.Addr, grpcclient.Options{DefaultTimeout: time.Hour})
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	req := &basebv1.ExportFeaturesRequest{BatchSize: int32(*batch)}
	if *cursorFile != "" {
		if b, err := os.ReadFile(*cursorFile); err == nil {
			req.Cursor = strings.TrimSpace(string(b))
		}
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cfg.Token.Reveal())
	stream, err := basebv1.NewProfileServiceClient(conn).ExportFeatures(ctx, req)
	if err != nil {
		return err
	}
	w := csv.NewWriter(out)
	header := req.GetCursor() == ""
	m := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	start, n := time.Now(), 0
	for {
		row, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if *format == "jsonl" {
			b, _ := m.Marshal(row)
			if _, err := fmt.Fprintln(out, string(b)); err != nil {
				return err
			}
		} else {
			if header {
				_ = w.Write([]string{"cpf", "age", "total_assets_cents", "asset_count", "monthly_income_cents", "income_source_count",
					"open_debt_count", "open_debt_amount_cents", "score", "updated_at"})
				header = false
			}
			i := func(v int64) string { return strconv.FormatInt(v, 10) }
			_ = w.Write([]string{row.GetCpf(), i(int64(row.GetAge())), i(row.GetTotalAssetsCents()), i(int64(row.GetAssetCount())),
				i(row.GetMonthlyIncomeCents()), i(int64(row.GetIncomeSourceCount())), i(int64(row.GetOpenDebtCount())),
				i(row.GetOpenDebtAmountCents()), i(int64(row.GetScore())), row.GetUpdatedAt().AsTime().Format(time.RFC3339)})
			w.Flush()
			if err := w.Error(); err != nil {
				return err
			}
		}
		n++
		if *cursorFile != "" {
			if err := os.WriteFile(*cursorFile, []byte(row.GetCursor()), 0o600); err != nil {
				return err
			}
		}
		if n%1000 == 0 {
			fmt.Fprintf(progress, "\rexported %d rows (%.0f rows/s)", n, float64(n)/time.Since(start).Seconds())
		}
	}
	fmt.Fprintf(progress, "\rexported %d rows in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
