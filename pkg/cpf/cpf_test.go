package cpf_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/cpf"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want cpf.CPF
		err  error
	}{
		{"529.982.247-25", "52998224725", nil},
		{"52998224725", "52998224725", nil},
		{" 529 982 247 25 ", "52998224725", nil},
		{"111.444.777-35", "11144477735", nil},
		{"529.982.247-24", "", cpf.ErrCheckDigits},
		{"52998224735", "", cpf.ErrCheckDigits},
		{"111.111.111-11", "", cpf.ErrRepeated},
		{"00000000000", "", cpf.ErrRepeated},
		{"5299822472", "", cpf.ErrLength},
		{"529982247250", "", cpf.ErrLength},
		{"", "", cpf.ErrLength},
		{"529.982.247/25", "", cpf.ErrCharacter},
		{"529９82247-25", "", cpf.ErrCharacter},
		{strings.Repeat("1", 100), "", cpf.ErrLength},
	}
	for _, tc := range tests {
		got, err := cpf.Parse(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestCompleteProducesValidCPFs(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"529982247", "111444777", "123456789", "000000001"} {
		c := cpf.Complete(base)
		if _, err := cpf.Parse(string(c)); err != nil {
			t.Errorf("Complete(%q) = %q is invalid: %v", base, c, err)
		}
	}
	if cpf.Complete("12345") != "" || cpf.Complete("12345678x") != "" {
		t.Error("Complete accepted a bad base")
	}
	if got := cpf.CPF("52998224725").Formatted(); got != "529.982.247-25" {
		t.Errorf("Formatted = %q", got)
	}
	if got := cpf.CPF("52998224725").Masked(); strings.Contains(got, "529") || strings.Contains(got, "25") {
		t.Errorf("Masked leaks: %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"529.982.247-25", "52998224725", "111.111.111-11", "", "abc", "1.2-3 4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := cpf.Parse(s)
		if err != nil {
			if c != "" {
				t.Fatalf("error with a value: %q", c)
			}
			return
		}
		if len(c) != 11 {
			t.Fatalf("valid CPF not 11 digits: %q", c)
		}
		// Idempotent: parsing the canonical form gives the same CPF.
		again, err := cpf.Parse(string(c))
		if err != nil || again != c {
			t.Fatalf("canonical form not stable: %q -> %q, %v", c, again, err)
		}
		if _, err := cpf.Parse(c.Formatted()); err != nil {
			t.Fatalf("formatted form rejected: %v", err)
		}
	})
}
