package grants_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/services/base-a/internal/grants"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tok := grants.New()
	h, err := grants.Parse(tok)
	if err != nil || !bytes.Equal(h, grants.Hash(tok)) {
		t.Fatalf("fresh token refused: %v", err)
	}
	if grants.New() == tok {
		t.Fatal("two tokens alike")
	}
	for _, bad := range []string{"", "sgt_", tok[:len(tok)-1], tok + "A", "xyz_" + tok[4:], strings.Replace(tok, tok[10:11], "+", 1)} {
		if _, err := grants.Parse(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(grants.New())
	f.Add("sgt_")
	f.Add("sgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := grants.Parse(s)
		if err != nil {
			return
		}
		if len(h) != 32 || !strings.HasPrefix(s, grants.Prefix) {
			t.Fatalf("accepted %q", s)
		}
	})
}
