// Package config loads a service's configuration from environment variables
// with one prefix per service (BASEA_, BASEB_, BASEC_, GATEWAY_), applies
// defaults from struct tags and validates the result before anything starts.
//
// It wraps github.com/sethvargo/go-envconfig; only main passes the process
// environment in (config.Env()), everything below takes a Lookuper so tests
// can pass a map.
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// Lookuper finds the value of one variable.
type Lookuper = envconfig.Lookuper

// Env returns the process environment as a Lookuper. Call it only in main.
func Env() Lookuper { return envconfig.OsLookuper() }

// Map returns a Lookuper over a fixed map, for tests and launchers.
func Map(m map[string]string) Lookuper { return envconfig.MapLookuper(m) }

// Validator is implemented by configurations that check themselves.
type Validator interface {
	Validate() error
}

// Errors runs the Validate of each shared part a configuration embeds
// (Service, GRPC) and returns their errors, to which a service's Validate
// adds its own before joining them.
func Errors(parts ...Validator) []error {
	var errs []error
	for _, p := range parts {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Load fills cfg (a pointer to a struct tagged with `env:"NAME"`) from the
// variables named prefix+NAME and validates it when it implements Validator.
// A Service cfg embeds also gets the standard OTEL_* environment (LoadOTel,
// no prefix).
// Every Secret field may instead come from the file named by
// prefix+NAME+"_FILE" (its content, trailing newline trimmed).
// Errors name the variable but never its value.
func Load(ctx context.Context, prefix string, cfg any, l Lookuper) error {
	if l == nil {
		return errors.New("config: nil lookuper")
	}
	pl := envconfig.PrefixLookuper(prefix, l)
	files, err := secretFiles(cfg, pl)
	if err != nil {
		return fmt.Errorf("config (%s*): %w", prefix, err)
	}
	err = envconfig.ProcessWith(ctx, &envconfig.Config{
		Target:   cfg,
		Lookuper: overlay{values: files, l: pl},
	})
	if err != nil {
		return fmt.Errorf("config (%s*): %w", prefix, named(reflect.TypeOf(cfg), prefix, err))
	}
	if s, ok := cfg.(interface{ service() *Service }); ok {
		s.service().OTel = LoadOTel(l)
	}
	if v, ok := cfg.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("config (%s*): %w", prefix, err)
		}
	}
	return nil
}

// Defaults gives every field of cfg (a pointer to a struct tagged as for
// Load) that is still zero the default its tag names, as Load does for a
// variable left unset; fields already set are kept. A component whose
// configuration is also built in code (tests, tools) applies its defaults
// with it, so each default is written once, in its tag. A required field
// left zero is an error naming its variable.
func Defaults(ctx context.Context, cfg any) error {
	err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: cfg, Lookuper: envconfig.MapLookuper(nil)})
	if err != nil {
		return named(reflect.TypeOf(cfg), "", err)
	}
	return nil
}

// named turns envconfig's "Field: cause" into "PREFIX_VARIABLE: cause"
// (through untagged embedded structs such as Service), so an error names
// the setting an operator wrote, as Validate's errors do.
func named(t reflect.Type, prefix string, err error) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	inner := errors.Unwrap(err)
	if t.Kind() != reflect.Struct || inner == nil {
		return err
	}
	field, ok := strings.CutSuffix(err.Error(), ": "+inner.Error())
	if !ok {
		return err
	}
	f, ok := t.FieldByName(field)
	if !ok {
		return err
	}
	key, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	if key = strings.TrimSpace(key); key == "" {
		return named(f.Type, prefix, inner)
	}
	return fmt.Errorf("%s%s: %w", prefix, key, inner)
}

// Secret holds a credential read from configuration. It never prints its
// value: fmt, slog and encoding/json all see "[redacted]". Reveal returns it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value. Call it only where the value is used.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer so %#v does not leak either.
func (s Secret) GoString() string { return s.String() }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
