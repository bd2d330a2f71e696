// Package stack starts Strata's local platform: a private PostgreSQL
// cluster, a private RabbitMQ node, FerretDB embedded in this process over
// SQLite, and the service binaries as child processes.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Proc is a child process in its own process group.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProc starts argv with env, logging to logPath. When asUser is set and
// we run as root, the child runs as that user (PostgreSQL and RabbitMQ
// refuse to run as root).
func StartProc(name string, argv, env []string, dir, logPath, asUser string) (*Proc, error) {
	if asUser != "" && os.Geteuid() == 0 {
		wrapped := []string{"runuser", "-u", asUser, "--", "env"}
		wrapped = append(wrapped, env...)
		argv = append(wrapped, argv...)
		env = nil
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), env...)
	// Own process group: Ctrl-C in the terminal reaches only the launcher,
	// which then stops children in order. Pdeathsig stops a child if the
	// launcher itself is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process exits.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Proc) Err() error { return p.err }

// Pid of the process.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM to the process group and SIGKILL after timeout.
func (p *Proc) Stop(timeout time.Duration) { p.StopWith(syscall.SIGTERM, timeout) }

// StopWith sends sig to the process group and SIGKILL after timeout.
func (p *Proc) StopWith(sig syscall.Signal, timeout time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Kill sends SIGKILL to the whole process group (fault injection).
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// chownTree gives dir and everything below it to the named user when we run
// as root; otherwise it does nothing.
func chownTree(dir, username string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(username)
	if err != nil {
		return fmt.Errorf("user %s: %w", username, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitTCP waits until addr accepts connections.
func WaitTCP(ctx context.Context, addr string, p *Proc) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.Done():
			return errors.New("exited before it was ready")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PortFree reports whether nothing listens on addr.
func PortFree(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return true
	}
	_ = c.Close()
	return false
}
