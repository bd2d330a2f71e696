// Package configtest holds a service's environment to a committed golden:
// every variable its Config reads (through embedded parts), whether it is
// required, and the value it loads with when the environment leaves it
// unset. The variables, their defaults and their required-ness are an
// operator contract; a change to them shows in review as a golden diff.
package configtest

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
)

// Golden loads a configuration with load from env (the least a service
// starts with), lists what it reads (variables) and compares the list with
// the file at path; STRATA_UPDATE_GOLDEN=1 rewrites the file. Each required
// variable is also dropped in turn: the load must then fail naming it.
func Golden[C any](t *testing.T, prefix string, env map[string]string, load func(context.Context, config.Lookuper) (*C, error), path string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := load(ctx, config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	vars := variables(prefix, cfg)
	got := strings.Join(vars, "\n") + "\n"
	if os.Getenv("STRATA_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the environment differs from %s (STRATA_UPDATE_GOLDEN=1 rewrites it):\n%s", path, got)
	}
	for _, v := range vars {
		name := strings.Fields(v)[0]
		if !strings.Contains(v, " required =") {
			continue
		}
		without := map[string]string{}
		for k, val := range env {
			if k != name {
				without[k] = val
			}
		}
		if _, err := load(ctx, config.Map(without)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("loads without the required %s, or fails without naming it: %v", name, err)
		}
	}
}

// Refusals loads a configuration with load from env, which must be
// refused, and returns each of the refusal's messages as an operator reads
// it (without the "config (PREFIX_*): " it starts with), sorted.
func Refusals[C any](t *testing.T, prefix string, env map[string]string, load func(context.Context, config.Lookuper) (*C, error)) []string {
	t.Helper()
	_, err := load(context.Background(), config.Map(env))
	if err == nil {
		t.Fatal("loaded a configuration that must be refused")
	}
	got := strings.Split(strings.TrimPrefix(err.Error(), fmt.Sprintf("config (%s*): ", prefix)), "\n")
	slices.Sort(got)
	return got
}

// variables lists the variables cfg's type reads, sorted, one per line:
// "NAME required = value" or "NAME = value", the value as cfg holds it
// (lists comma-separated, secrets redacted). A secret NAME also reads
// NAME_FILE (config.Load), listed once with an empty value.
func variables(prefix string, cfg any) []string {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	var out []string
	walk(prefix, v, &out)
	slices.Sort(out)
	return slices.CompactFunc(out, func(a, b string) bool { return strings.Fields(a)[0] == strings.Fields(b)[0] })
}

func walk(prefix string, v reflect.Value, out *[]string) {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name = strings.TrimSpace(name); name == "" {
			if fv.Kind() == reflect.Struct {
				walk(prefix, fv, out)
			}
			continue
		}
		req := ""
		if slices.Contains(strings.Split(strings.ReplaceAll(opts, " ", ""), ","), "required") {
			req = " required"
		}
		*out = append(*out, fmt.Sprintf("%s%s%s = %s", prefix, name, req, value(fv)))
		if f.Type == reflect.TypeFor[config.Secret]() {
			*out = append(*out, fmt.Sprintf("%s%s_FILE = ", prefix, name))
		}
	}
}

func value(v reflect.Value) string {
	if l, ok := v.Interface().(config.List); ok {
		return strings.Join(l, ",")
	}
	return fmt.Sprint(v.Interface())
}
