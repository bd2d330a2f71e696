package app_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
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
