package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL cluster.
type Postgres struct {
	// URL connects as the cluster's superuser over TCP.
	URL  string
	Port int
	proc *Proc
}

// PostgresOptions for StartPostgres.
type PostgresOptions struct {
	Dir  string // cluster lives in Dir/data
	Port int
	// Ephemeral trades durability for speed (tests): fsync off.
	Ephemeral bool
	Out       io.Writer
}

// StartPostgres initialises the cluster on first use and starts it.
func StartPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	bin, err := postgresBinDir(ctx, o.Out)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(o.Dir, "data")
	sock := filepath.Join(o.Dir, "run")
	pwFile := filepath.Join(o.Dir, "superuser.password")
	if err := os.MkdirAll(sock, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(o.Dir, 0o700); err != nil {
		return nil, err
	}
	password, err := ReadOrCreateSecret(pwFile)
	if err != nil {
		return nil, err
	}
	if err := initCluster(ctx, bin, o, data, pwFile); err != nil {
		return nil, err
	}
	// The superuser password file is only needed by initdb; keep our copy
	// readable by us alone.
	argv := []string{filepath.Join(bin, "postgres"), "-D", data,
		"-p", strconv.Itoa(o.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + sock,
		"-c", "max_connections=200",
		"-c", "shared_buffers=128MB",
		// Statement statistics for operators (and the e2e test that plans
		// every statement the services ran: app/explain_test.go).
		"-c", "shared_preload_libraries=pg_stat_statements",
		"-c", "pg_stat_statements.max=20000",
	}
	if o.Ephemeral {
		argv = append(argv, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	addr := "127.0.0.1:" + strconv.Itoa(o.Port)
	if !PortFree(addr) {
		return nil, fmt.Errorf("port %d is in use: is another strata-local running? (stop it, or set DATABASE_URL)", o.Port)
	}
	p, err := StartProc("postgres", argv, nil, o.Dir, filepath.Join(o.Dir, "postgres.log"), "postgres")
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password), Host: addr, Path: "/postgres", RawQuery: "sslmode=disable"}
	pg := &Postgres{URL: u.String(), Port: o.Port, proc: p}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(wctx, pg.URL)
		if err == nil {
			_ = conn.Close(wctx)
			return pg, nil
		}
		select {
		case <-wctx.Done():
			p.Stop(10 * time.Second)
			return nil, fmt.Errorf("postgres did not become ready (see %s)", filepath.Join(o.Dir, "postgres.log"))
		case <-p.Done():
			return nil, fmt.Errorf("postgres exited at start (see %s)", filepath.Join(o.Dir, "postgres.log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// initCluster runs initdb in data when it holds no cluster yet, and gives
// the cluster's directory to the postgres user.
func initCluster(ctx context.Context, bin string, o PostgresOptions, data, pwFile string) error {
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); !errors.Is(err, os.ErrNotExist) {
		return chownTree(o.Dir, "postgres")
	}
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	if err := chownTree(o.Dir, "postgres"); err != nil {
		return err
	}
	args := []string{filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + pwFile,
		"--encoding=UTF8", "--locale=C.UTF-8"}
	if o.Ephemeral {
		args = append(args, "--no-sync")
	}
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	if b, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, b)
	}
	return nil
}

// Stop shuts the cluster down (fast mode: SIGINT finishes in-flight
// transactions' rollback and checkpoints).
func (pg *Postgres) Stop() {
	if pg == nil || pg.proc == nil {
		return
	}
	pg.proc.StopWith(syscall.SIGINT, 30*time.Second)
}

// Proc is the server process.
func (pg *Postgres) Proc() *Proc { return pg.proc }

// EnsureDatabase creates database name if it does not exist and returns its URL.
func EnsureDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", errors.New("cannot connect to PostgreSQL as its administrator")
	}
	defer func() { _ = conn.Close(ctx) }()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", errors.New("invalid database URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

// ReadOrCreateSecret returns the secret in path, creating a random one
// (readable by this user only) on first use.
func ReadOrCreateSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [24]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	s := hex.EncodeToString(r[:])
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	return s, nil
}

// DatabaseRoles describes a service's database and its two login roles:
// the owner, which only migrations use, and the application role the
// long-running service connects as. Neither is a superuser, and neither
// may create roles or databases (so the owner cannot grant itself
// membership in a role that the audit triggers trust).
type DatabaseRoles struct {
	Database             string
	Owner, OwnerPassword string
	App, AppPassword     string
	// AppMemberOf are NOLOGIN roles granted to the application role.
	AppMemberOf []string
}

// ProvisionDatabase creates (or updates) the roles and the database as the
// cluster administrator at adminURL, makes Owner own the database and every
// object already in its public schema, and lets only Owner and App connect.
// It returns the owner's and the application role's URLs.
func ProvisionDatabase(ctx context.Context, adminURL string, d DatabaseRoles) (ownerURL, appURL string, err error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", "", errors.New("cannot connect to PostgreSQL as its administrator")
	}
	defer func() { _ = conn.Close(ctx) }()
	if err := ensureRole(ctx, conn, d.Owner, d.OwnerPassword, true); err != nil {
		return "", "", err
	}
	if err := ensureRole(ctx, conn, d.App, d.AppPassword, true); err != nil {
		return "", "", err
	}
	for _, r := range d.AppMemberOf {
		if err := ensureRole(ctx, conn, r, "", false); err != nil {
			return "", "", err
		}
		if _, err := conn.Exec(ctx, "GRANT "+pgx.Identifier{r}.Sanitize()+" TO "+pgx.Identifier{d.App}.Sanitize()); err != nil {
			return "", "", fmt.Errorf("grant %s: %w", r, err)
		}
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", d.Database).Scan(&exists); err != nil {
		return "", "", err
	}
	db, owner, app := pgx.Identifier{d.Database}.Sanitize(), pgx.Identifier{d.Owner}.Sanitize(), pgx.Identifier{d.App}.Sanitize()
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+db+" OWNER "+owner); err != nil {
			return "", "", fmt.Errorf("create database %s: %w", d.Database, err)
		}
	}
	for _, q := range []string{"ALTER DATABASE " + db + " OWNER TO " + owner, "REVOKE ALL ON DATABASE " + db + " FROM PUBLIC",
		"GRANT CONNECT ON DATABASE " + db + " TO " + owner + ", " + app} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", "", fmt.Errorf("%s: %w", q, err)
		}
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", "", errors.New("invalid database URL")
	}
	u.Path = "/" + d.Database
	if err := handOverSchema(ctx, u.String(), d.Database, owner, d.Owner); err != nil {
		return "", "", err
	}
	u.User = url.UserPassword(d.Owner, d.OwnerPassword)
	ownerURL = u.String()
	u.User = url.UserPassword(d.App, d.AppPassword)
	return ownerURL, u.String(), nil
}

// ensureRole creates or updates role name: never a superuser, never able
// to create roles or databases; a login role with password, or NOLOGIN.
func ensureRole(ctx context.Context, conn *pgx.Conn, name, password string, login bool) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	q := verb + " ROLE " + pgx.Identifier{name}.Sanitize() + " NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS"
	if login {
		q += " LOGIN PASSWORD " + quoteLiteral(password)
	} else {
		q += " NOLOGIN"
	}
	if _, err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("role %s: %w", name, err)
	}
	return nil
}

// handOverSchema gives the public schema of the database at dbURL, and
// every table, view, sequence and function in it, to ownerName (owner is
// its quoted identifier). A database made by an earlier release belongs to
// the administrator: this hands its schema and objects to the owner.
func handOverSchema(ctx context.Context, dbURL, database, owner, ownerName string) error {
	dbc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to %s as administrator: %w", database, err)
	}
	defer func() { _ = dbc.Close(ctx) }()
	rows, err := dbc.Query(ctx, `
		SELECT 'ALTER SCHEMA public OWNER TO ' || $1::text WHERE (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public') <> $2
		UNION ALL
		SELECT format('ALTER %s %I OWNER TO %s', CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, c.relname, $1::text)
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'S') AND pg_get_userbyid(c.relowner) <> $2
		   AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend dep WHERE dep.objid = c.oid AND dep.deptype IN ('a', 'i')))
		UNION ALL
		SELECT format('ALTER FUNCTION %s OWNER TO %s', p.oid::regprocedure, $1::text)
		  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		 WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> $2`, owner, ownerName)
	if err != nil {
		return err
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, q := range stmts {
		if _, err := dbc.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
