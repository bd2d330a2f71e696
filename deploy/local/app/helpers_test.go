package app_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ownDatabases is a DatabaseSuffix no other platform started on these
// shared test stores has used (nor this test's earlier runs, with -count).
func ownDatabases(name string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "_" + name + "_" + hex.EncodeToString(b)
}

// dumpLogsOnFailure prints the last warnings and errors every service logged under
// dataDir when the test fails, so a failure in CI can be read after the
// temporary directory is gone.
func dumpLogsOnFailure(t *testing.T, dataDir string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(filepath.Join(dataDir, "logs", "*.log"))
		for _, l := range logs {
			b, err := os.ReadFile(l)
			if err != nil {
				continue
			}
			// Warnings and errors (access-log lines would crowd them out).
			var lines []string
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
					lines = append(lines, line)
				}
			}
			if len(lines) > 30 {
				lines = lines[len(lines)-30:]
			}
			t.Logf("--- warnings and errors %s logged (last 30):\n%s", filepath.Base(l), strings.Join(lines, "\n"))
		}
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func decodeField(tb testing.TB, resp *http.Response, field string) string {
	tb.Helper()
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		tb.Fatal(err)
	}
	v, _ := m[field].(string)
	if v == "" {
		tb.Fatalf("no %s in response (%d)", field, resp.StatusCode)
	}
	return v
}
