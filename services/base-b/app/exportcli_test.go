package app_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/base-b/app"
	"github.com/strata-bureau/strata/services/base-b/internal/oidctest"
)

// baseb-export end to end: a time window, a progress bar that knows the
// total, JSON lines, a cursor file that resumes an interrupted export with
// no gap and no duplicate, and clear refusals of bad flags.
func TestExportCLI(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	r := c.start()
	ctx := testenv.Context(t)
	old, recent := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for i := range 30 {
		at := old
		if i%3 != 0 {
			at = recent
			want = append(want, newCPF(300+i))
		}
		if _, err := c.db.Collection("profiles").InsertOne(ctx, bson.M{"_id": newCPF(300 + i), "birth_date": "1990-01-01",
			"assets": bson.A{}, "income_sources": bson.A{}, "updated_at": at}); err != nil {
			t.Fatal(err)
		}
	}
	token := c.issuer.Token(t, oidctest.Claims{Subject: "ml-team", Audience: audience, Scope: "base-b:export"})
	exp := c.issue(tester)
	vars := config.Map(map[string]string{"BASEB_EXPORT_ADDR": r.addr, "BASEB_EXPORT_TOKEN": token,
		"BASEB_EXPORT_TLS_CERT": exp.Cert, "BASEB_EXPORT_TLS_KEY": exp.Key, "BASEB_EXPORT_TLS_CA": exp.CA})
	run := func(args ...string) (string, string, error) {
		var out, progress bytes.Buffer
		err := app.RunExport(ctx, vars, args, &out, &progress)
		return out.String(), progress.String(), err
	}

	// Only the 20 profiles updated in 2026, with a bar that knew there were 20.
	out, progress, err := run("-from", "2026-01-01", "-to", "2027-01-01T00:00:00Z", "-progress", "bar", "-batch", "7")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 21 || rows[0][0] != "cpf" {
		t.Fatalf("windowed CSV export: %d lines (want a header and 20 rows)", len(rows))
	}
	for i, row := range rows[1:] {
		if row[0] != want[i] {
			t.Fatalf("row %d is %s, want %s", i, row[0], want[i])
		}
	}
	if !strings.Contains(progress, "100%") || !strings.Contains(progress, "(20/20") || !strings.Contains(progress, "exported 20 rows") {
		t.Fatalf("progress bar output: %q", progress)
	}

	// JSON lines, interrupted and resumed through the cursor file.
	cursor := filepath.Join(t.TempDir(), "cursor")
	first, _, err := run("-format", "jsonl", "-cursor-file", cursor, "-progress", "none", "-to", "2025-12-31")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(first, "\n"); n != 10 {
		t.Fatalf("old-profile export: %d rows, want 10", n)
	}
	var row struct {
		CPF    string `json:"cpf"`
		Cursor string `json:"cursor"`
	}
	lines := strings.Split(strings.TrimSpace(first), "\n")
	if err := json.Unmarshal([]byte(lines[3]), &row); err != nil || row.CPF == "" {
		t.Fatalf("jsonl row: %q %v", lines[3], err)
	}
	// As if the process had died after the fourth row.
	if err := os.WriteFile(cursor, []byte(row.Cursor), 0o600); err != nil {
		t.Fatal(err)
	}
	rest, progress, err := run("-format", "jsonl", "-cursor-file", cursor, "-progress", "lines", "-to", "2025-12-31")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines[:4], "\n") + "\n" + rest; got != first {
		t.Fatalf("resumed export differs from the uninterrupted one:\n%s\nvs\n%s", got, first)
	}
	if !strings.Contains(progress, "exported 6 rows") {
		t.Fatalf("progress lines: %q", progress)
	}

	for _, bad := range [][]string{{"-from", "yesterday"}, {"-from", "2026-02-01", "-to", "2026-01-01"}, {"-format", "xml"},
		{"-progress", "fancy"}, {"stray"}} {
		if _, _, err := run(bad...); err == nil {
			t.Fatalf("%v was accepted", bad)
		}
	}
}
