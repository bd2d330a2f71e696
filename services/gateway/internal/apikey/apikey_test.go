package apikey_test

import (
	"strings"
	"testing"

	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
)

func TestNewKeysParse(t *testing.T) {
	t.Parallel()
	id, full := apikey.New()
	k, err := apikey.Parse(full)
	if err != nil || k.ID != id || len(k.Secret) != 32 {
		t.Fatalf("fresh key refused: %q %+v %v", full, k, err)
	}
	// Any single-character typo is caught by the checksum or the shape.
	for i := len(apikey.Prefix); i < len(full); i++ {
		b := []byte(full)
		if b[i] == '_' {
			continue
		}
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		if _, err := apikey.Parse(string(b)); err == nil {
			t.Errorf("typo at %d accepted", i)
		}
	}
	for _, bad := range []string{"", "strata_live_", full + "x", strings.ToUpper(full), strings.Replace(full, "strata_live_", "strata_test_", 1)} {
		if _, err := apikey.Parse(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if string(apikey.Hash([]byte("p1"), k.Secret)) == string(apikey.Hash([]byte("p2"), k.Secret)) {
		t.Error("pepper ignored")
	}
}

func FuzzParse(f *testing.F) {
	_, full := apikey.New()
	f.Add(full)
	f.Add("strata_live_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_aaaaaaa")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := apikey.Parse(s)
		if err == nil && (len(k.ID) != 12 || len(k.Secret) != 32 || !strings.HasPrefix(s, apikey.Prefix)) {
			t.Fatalf("accepted %q", s)
		}
	})
}
