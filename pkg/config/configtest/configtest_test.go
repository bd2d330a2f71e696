package configtest

import (
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
