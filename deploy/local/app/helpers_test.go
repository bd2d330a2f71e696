package app_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

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
