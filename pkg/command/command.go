// Package command is the body of every cmd/*/main.go: a context cancelled
// by SIGINT or SIGTERM, the process environment as a config.Lookuper, the
// arguments and standard streams, and one exit path. Mains are one call:
//
//	func main() { command.Main("base-b", command.Service(app.Load, app.Run, nil)) }
//
// It is the only code outside cmd/ that reads the process environment or
// exits; everything it calls takes its inputs as arguments.
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/logging"
)

// Env is what a command receives from main.
type Env struct {
	// Name is the command's name (for messages and logs).
	Name   string
	Lookup config.Lookuper
	// Args are the arguments after the program name.
	Args   []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Func is a command's body.
type Func func(ctx context.Context, env Env) error

// Main runs fn with the process's environment and exits: 0 when fn returns
// nil, the code of an Exit error, else 1 after printing "name: err".
func Main(name string, fn Func) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := fn(ctx, Env{Name: name, Lookup: config.Env(), Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(Code(name, err, os.Stderr))
}

// Code is the exit status for err, after printing it (except Exit codes)
// to stderr as "name: err".
func Code(name string, err error, stderr io.Writer) int {
	var e exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return int(e)
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Exit returns an error that makes Main exit with code, silently (the
// command has already said why); Exit(0) is nil.
func Exit(code int) error {
	if code == 0 {
		return nil
	}
	return exitError(code)
}

// Logged is a service configuration that names its log level.
type Logged interface {
	LogLevelName() string
}

// Service returns the Func of a long-running service: with no arguments it
// loads the configuration, builds the JSON logger at its level and runs;
// "migrate" runs migrate (when not nil: it applies the schema as the owner
// role, whose credentials the long-running service never holds).
func Service[C Logged](load func(context.Context, config.Lookuper) (C, error),
	run func(context.Context, C, *slog.Logger) error, migrate func(context.Context, config.Lookuper) error,
) Func {
	return func(ctx context.Context, env Env) error {
		switch {
		case len(env.Args) == 1 && env.Args[0] == "migrate" && migrate != nil:
			return migrate(ctx, env.Lookup)
		case len(env.Args) > 0:
			usage := ""
			if migrate != nil {
				usage = " (usage: " + env.Name + " [migrate])"
			}
			return fmt.Errorf("unknown command %q%s", env.Args[0], usage)
		}
		cfg, err := load(ctx, env.Lookup)
		if err != nil {
			return err
		}
		level, err := logging.ParseLevel(cfg.LogLevelName())
		if err != nil {
			return err
		}
		return run(ctx, cfg, logging.New(env.Stdout, level, env.Name))
	}
}
