package input_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/input"
)

func TestText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want error
	}{
		{"análise de crédito para empréstimo", nil},
		{"loan\x00application", input.ErrControl},
		{"loan\napplication", input.ErrControl},
		{"loan\u0085application", input.ErrControl},
		{"loan\u2028application", input.ErrControl},
		{"loan \xff application", input.ErrEncoding},
		{strings.Repeat("a", 501), input.ErrLength},
	}
	for _, c := range cases {
		if err := input.Text(c.in, 500); !errors.Is(err, c.want) && !(err == nil && c.want == nil) {
			t.Errorf("Text(%q) = %v, want %v", c.in, err, c.want)
		}
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	if err := input.Token("Bearer eyJ.a-b_c~d+e/f=", 100, true); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"Bearer a\x01b", "Bearer a\x7fb", "sgt_é", "a\tb", "a\x00"} {
		if err := input.Token(bad, 100, true); !errors.Is(err, input.ErrToken) {
			t.Errorf("Token(%q) = %v", bad, err)
		}
	}
	if err := input.Token("a b", 100, false); err == nil {
		t.Fatal("a space passed where none is allowed")
	}
	if err := input.Token(strings.Repeat("a", 101), 100, false); !errors.Is(err, input.ErrLength) {
		t.Fatal("no length cap")
	}
}

func TestIP(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"127.0.0.1", "2001:db8::1"} {
		if input.IP(ok) != nil {
			t.Errorf("%s refused", ok)
		}
	}
	for _, bad := range []string{"", "localhost", "1.2.3.4\x00", "1.2.3.4, 5.6.7.8"} {
		if input.IP(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUpperASCII(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"granted": "GRANTED", "Mixed_Case-1": "MIXED_CASE-1", "ſuccess": "ſUCCESS", "": ""} {
		if got := input.UpperASCII(in); got != want {
			t.Errorf("UpperASCII(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("reason text", 500)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		if input.Text(s, n) == nil {
			if len(s) > n || strings.ContainsAny(s, "\x00\r\n") {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}
