package command_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/pkg/config"
)

type cfg struct{ Level string }

func (c *cfg) LogLevelName() string { return c.Level }

func load(level string) func(context.Context, config.Lookuper) (*cfg, error) {
	return func(context.Context, config.Lookuper) (*cfg, error) { return &cfg{Level: level}, nil }
}

func TestServiceLoadsLogsRunsAndMigrates(t *testing.T) {
	t.Parallel()
	var ran, migrated int
	run := func(_ context.Context, _ *cfg, l *slog.Logger) error { ran++; l.Info("up"); return nil }
	migrate := func(context.Context, config.Lookuper) error { migrated++; return nil }
	var out bytes.Buffer
	env := command.Env{Name: "svc", Lookup: config.Map(nil), Stdout: &out}
	if err := command.Service(load("info"), run, migrate)(context.Background(), env); err != nil || ran != 1 {
		t.Fatalf("run: %v (ran %d)", err, ran)
	}
	if !strings.Contains(out.String(), `"service":"svc"`) {
		t.Fatalf("the log line does not name the service: %s", out.String())
	}
	env.Args = []string{"migrate"}
	if err := command.Service(load("info"), run, migrate)(context.Background(), env); err != nil || migrated != 1 || ran != 1 {
		t.Fatalf("migrate: %v (migrated %d, ran %d)", err, migrated, ran)
	}
	if err := command.Service(load("info"), run, nil)(context.Background(), env); err == nil {
		t.Fatal("migrate accepted by a service without migrations")
	}
	env.Args = []string{"bogus"}
	if err := command.Service(load("info"), run, migrate)(context.Background(), env); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown command: %v", err)
	}
	env.Args = nil
	if err := command.Service(load("loud"), run, migrate)(context.Background(), env); err == nil || ran != 1 {
		t.Fatalf("a bad log level: %v (ran %d)", err, ran)
	}
}

func TestCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{nil, 0, ""},
		{command.Exit(0), 0, ""},
		{command.Exit(3), 3, ""},
		{errors.New("boom"), 1, "svc: boom\n"},
	} {
		var stderr bytes.Buffer
		if code := command.Code("svc", tc.err, &stderr); code != tc.code || stderr.String() != tc.msg {
			t.Errorf("%v: code %d, stderr %q; want %d, %q", tc.err, code, stderr.String(), tc.code, tc.msg)
		}
	}
}
