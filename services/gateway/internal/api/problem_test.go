package api

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
)

// A handler error that is not a problem (a bug) is answered 500 without
// detail and logged once, with its cause; a problem is answered as is and
// not logged.
func TestRegisterLogsErrorsThatAreNotProblems(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	mux := http.NewServeMux()
	api := NewAPI(mux)
	register(api, logger, huma.Operation{OperationID: "bug", Method: "GET", Path: "/bug"}, func(context.Context, *struct{}) (*struct{}, error) {
		return nil, errors.New("nil map in converter")
	})
	register(api, logger, huma.Operation{OperationID: "gone", Method: "GET", Path: "/gone"}, func(context.Context, *struct{}) (*struct{}, error) {
		return nil, notFound("no such CPF")
	})
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/bug", nil))
	if w.Code != 500 || strings.TrimSpace(w.Body.String()) != `{"type":"urn:strata:problem:internal","title":"Internal Server Error","status":500,"detail":"internal error"}` {
		t.Fatalf("bug: %d %s", w.Code, w.Body)
	}
	if strings.Count(log.String(), "masked error") != 1 || !strings.Contains(log.String(), "bug: nil map in converter") {
		t.Fatalf("log: %s", log.String())
	}
	log.Reset()
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/gone", nil))
	if w.Code != 404 || log.Len() != 0 {
		t.Fatalf("problem: %d %s, log %s", w.Code, w.Body, log.String())
	}
}
