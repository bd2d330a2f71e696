package stack

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// aptInstall installs Debian packages when we are root on a Debian-like
// system; otherwise it returns an error naming what to install.
func aptInstall(ctx context.Context, out io.Writer, what string, pkgs ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is not installed: install the Debian package(s) %s (or set the URL of an existing server)", what, strings.Join(pkgs, " "))
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s is not installed and apt-get is not available: install %s (or set the URL of an existing server)", what, strings.Join(pkgs, " "))
	}
	fmt.Fprintf(out, "strata-local: installing %s (apt-get install %s)...\n", what, strings.Join(pkgs, " "))
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		b, err := cmd.CombinedOutput()
		if err != nil {
			tail := string(b)
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail)
		}
		return nil
	}
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)
	if err := run(args...); err != nil {
		// The package lists may be missing on a fresh machine.
		if uerr := run("update", "-qq"); uerr != nil {
			return fmt.Errorf("cannot install %s: %w", what, uerr)
		}
		if err := run(args...); err != nil {
			return fmt.Errorf("cannot install %s: %w", what, err)
		}
	}
	return nil
}

// postgresBinDir finds the PostgreSQL server binaries (Debian keeps them
// outside PATH), installing the server when it can.
func postgresBinDir(ctx context.Context, out io.Writer) (string, error) {
	find := func() string {
		if b, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
			dir := strings.TrimSpace(string(b))
			if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
				return dir
			}
		}
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
		sort.Strings(matches)
		if len(matches) > 0 {
			return filepath.Dir(matches[len(matches)-1])
		}
		if p, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p)
		}
		return ""
	}
	if d := find(); d != "" {
		return d, nil
	}
	if err := aptInstall(ctx, out, "the PostgreSQL server", "postgresql"); err != nil {
		return "", err
	}
	if d := find(); d != "" {
		return d, nil
	}
	return "", fmt.Errorf("PostgreSQL server binaries not found after installing the postgresql package")
}

// rabbitmqServer finds the rabbitmq-server script, installing it when it can.
func rabbitmqServer(ctx context.Context, out io.Writer) (string, error) {
	find := func() string {
		for _, p := range []string{"/usr/lib/rabbitmq/bin/rabbitmq-server"} {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		if p, err := exec.LookPath("rabbitmq-server"); err == nil {
			return p
		}
		return ""
	}
	if p := find(); p != "" {
		return p, nil
	}
	if err := aptInstall(ctx, out, "RabbitMQ", "rabbitmq-server"); err != nil {
		return "", err
	}
	if p := find(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("rabbitmq-server not found after installing it")
}
