package auth_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/services/base-c/internal/auth"
)

// fast parameters for tests that are not about Argon2 cost.
var fast = auth.Params{MemoryKiB: 64, Time: 1, Threads: 1}

func TestHashVerify(t *testing.T) {
	t.Parallel()
	h, err := auth.Hash("correct horse battery", auth.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("unexpected encoding: %s", h)
	}
	if ok, err := auth.Verify("correct horse battery", h); !ok || err != nil {
		t.Fatalf("right password refused: %v %v", ok, err)
	}
	if ok, _ := auth.Verify("correct horse batterY", h); ok {
		t.Fatal("wrong password accepted")
	}
	h2, _ := auth.Hash("correct horse battery", auth.DefaultParams)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt missing")
	}
}

func TestVerifyRejectsMalformedAndHostileHashes(t *testing.T) {
	t.Parallel()
	good, _ := auth.Hash("pw", fast)
	parts := strings.Split(good, "$")
	for _, h := range []string{
		"", "plain", "$argon2i$v=19$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=18$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=4194304,t=1,p=1$" + parts[4] + "$" + parts[5], // 4 GiB: refused
		"$argon2id$v=19$m=64,t=1000,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$!!!$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$" + parts[4] + "$",
	} {
		if ok, err := auth.Verify("pw", h); ok || err == nil {
			t.Errorf("accepted malformed hash %q", h)
		}
	}
}

func basic(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseBasic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in         string
		user, pass string
		ok         bool
	}{
		{basic("alice:s3cret"), "alice", "s3cret", true},
		{basic("alice:pass:with:colons"), "alice", "pass:with:colons", true},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("bob@bank.com:x")), "bob@bank.com", "x", true},
		{basic(":nouser"), "", "", false},
		{basic("nopass:"), "", "", false},
		{basic("nocolon"), "", "", false},
		{basic("bad user:x"), "", "", false},
		{basic("alice:line\nbreak"), "", "", false},
		{"Bearer abc", "", "", false},
		{"Basic !!!notbase64", "", "", false},
		{"Basic", "", "", false},
		{basic("a:" + strings.Repeat("x", 2000)), "", "", false},
	}
	for _, tc := range tests {
		u, p, ok := auth.ParseBasic(tc.in)
		if ok != tc.ok || u != tc.user || p != tc.pass {
			t.Errorf("ParseBasic(%.40q) = %q %q %v", tc.in, u, p, ok)
		}
	}
}

func FuzzParseBasic(f *testing.F) {
	f.Add(basic("alice:s3cret"))
	f.Add("Basic Og==")
	f.Add("Basic ")
	f.Fuzz(func(t *testing.T, s string) {
		u, p, ok := auth.ParseBasic(s)
		if !ok {
			return
		}
		if !auth.ValidUsername(u) || p == "" || strings.ContainsAny(p, "\x00\r\n") {
			t.Fatalf("accepted bad credentials %q %q", u, p)
		}
	})
}

func FuzzVerify(f *testing.F) {
	good, _ := auth.Hash("pw", fast)
	f.Add("pw", good)
	f.Add("pw", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Fuzz(func(t *testing.T, pw, h string) {
		// Must never panic or allocate without bound; a parsed hash is
		// capped at 256 MiB and t=10 by parse.
		if strings.Contains(h, "m=") && len(h) > 0 {
			_, _ = auth.Verify(pw, h)
		}
	})
}
