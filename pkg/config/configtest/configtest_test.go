package configtest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
)

// The list walks embedded parts, marks the required variables, joins
// lists, redacts secrets, adds each secret's _FILE once (also when the
// configuration declares it itself) and leaves untagged fields out.
func TestVariablesListWhatAConfigurationReads(t *testing.T) {
	t.Parallel()
	type Part struct {
		Addr string `env:"ADDR, default=127.0.0.1:1"`
	}
	cfg := struct {
		Part
		Key      config.Secret `env:"KEY, required"`
		Token    config.Secret `env:"TOKEN"`
		TokenF   string        `env:"TOKEN_FILE"`
		Clients  config.List   `env:"CLIENTS"`
		Untagged string
	}{Part: Part{Addr: "a:1"}, Key: "k", Clients: config.List{"x", "y"}}
	got := variables("P_", &cfg)
	want := []string{"P_ADDR = a:1", "P_CLIENTS = x,y", "P_KEY required = [redacted]", "P_KEY_FILE = ", "P_TOKEN = ", "P_TOKEN_FILE = "}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

type sample struct {
	Size int    `env:"SIZE, default=1"`
	Name string `env:"NAME, required"`
}

func (s *sample) Validate() error {
	if s.Size < 1 {
		return errors.Join(errors.New("SIZE must be 1 or more"), errors.New("A second refusal"))
	}
	return nil
}

func loadSample(ctx context.Context, l config.Lookuper) (*sample, error) {
	var s sample
	return &s, config.Load(ctx, "P_", &s, l)
}

// Refusals gives each message of a refused load, without the prefix
// line's "config (P_*): ", sorted.
func TestRefusalsAreTheMessagesAnOperatorReads(t *testing.T) {
	t.Parallel()
	got := Refusals(t, "P_", map[string]string{"P_NAME": "n", "P_SIZE": "0"}, loadSample)
	if want := []string{"A second refusal", "SIZE must be 1 or more"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
