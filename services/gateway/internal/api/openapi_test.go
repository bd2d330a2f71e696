package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// openAPIFile is the committed HTTP contract: a change to the public API
// shows in review as a change to this file.
var openAPIFile = filepath.Join("..", "..", "openapi.json")

// servedOpenAPI is the document the gateway serves at /openapi.json, with
// every operation registered as app.Serve registers them, indented.
func servedOpenAPI(t *testing.T) []byte {
	t.Helper()
	mux := http.NewServeMux()
	api := NewAPI(mux)
	(&Handlers{}).Register(api)
	(&Admin{}).Register(api)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/openapi.json", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/openapi.json: %d", w.Code)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, w.Body.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// The served document is the committed services/gateway/openapi.json. To
// change the contract on purpose, from services/gateway:
// go test ./internal/api -run TestOpenAPI -update, and commit the diff.
func TestOpenAPIDocumentIsCommitted(t *testing.T) {
	t.Parallel()
	served := servedOpenAPI(t)
	committed := golden(t, openAPIFile, served)
	if !bytes.Equal(served, committed) {
		t.Fatalf("the served OpenAPI document differs from services/gateway/openapi.json: a partner-visible change. " +
			"If it is meant, regenerate it (go test ./internal/api -run TestOpenAPI -update) and commit the diff")
	}
}

// The key scopes' enum in the document is apikey.Scopes, in order.
func TestOpenAPIScopeEnumIsTheScopeType(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Items struct {
						Enum []string `json:"enum"`
					} `json:"items"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(servedOpenAPI(t), &doc); err != nil {
		t.Fatal(err)
	}
	ref := doc.Paths["/v1/admin/partners/{id}/keys"]["post"].RequestBody.Content["application/json"].Schema.Ref
	schema, ok := doc.Components.Schemas[filepath.Base(ref)]
	if !ok {
		t.Fatalf("no schema for the create-key body (%q)", ref)
	}
	got := schema.Properties["scopes"].Items.Enum
	want := apikeyScopeStrings()
	if len(got) != len(want) {
		t.Fatalf("scopes enum %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("scopes enum %v, want %v", got, want)
		}
	}
}
