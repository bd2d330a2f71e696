package grpcapi_test

import (
	"testing"
	"time"

	"github.com/strata-bureau/strata/services/base-c/internal/domain"
	"github.com/strata-bureau/strata/services/base-c/internal/grpcapi"
)

func FuzzDecodePageToken(f *testing.F) {
	f.Add(grpcapi.EncodePageToken(domain.Cursor{OccurredAt: time.Now(), ID: "m1"}, "52998224725"))
	f.Add("")
	f.Add("e30")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := grpcapi.DecodePageToken(tok, "52998224725")
		if err == nil && (c.ID == "" || c.OccurredAt.IsZero()) {
			t.Fatalf("accepted an empty cursor from %q", tok)
		}
	})
}
