package app_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/pki"
	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/app"
	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/crypto"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

const appPassword = "test-app-role-password"

var template = testenv.Template{
	Name:    "basea",
	Version: store.MigrationsVersion(),
	Migrate: func(ctx context.Context, url string) error { return store.Migrate(ctx, url, "") },
}

var roleOnce sync.Once

// env is one Base A under test: its own database, certificates and keys.
type env struct {
	t        testing.TB
	adminURL string // superuser on this test's database
	appURL   string // the least-privileged role
	certs    string
	ca       *pki.CA
	vars     map[string]string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	adminURL := testenv.PostgresDB(t, template)
	ctx := testenv.Context(t)
	roleOnce.Do(func() {
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "ALTER ROLE "+store.AppRole+" LOGIN PASSWORD '"+appPassword+"'"); err != nil {
			t.Fatal(err)
		}
	})
	u, _ := url.Parse(adminURL)
	u.User = url.UserPassword(store.AppRole, appPassword)
	ca, err := pki.NewCA("strata test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &env{t: t, adminURL: adminURL, appURL: u.String(), certs: dir, ca: ca}
	server := e.issue("base-a", "base-a", "127.0.0.1")
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	e.vars = map[string]string{
		"BASEA_DATABASE_URL":        e.appURL,
		"BASEA_DATA_KEYS":           "1:" + crypto.NewKey(),
		"BASEA_BLIND_INDEX_KEY":     crypto.NewKey(),
		"BASEA_AUDIT_CHAIN_KEY":     crypto.NewKey(),
		"BASEA_AUDIT_SIGNING_KEY":   base64.StdEncoding.EncodeToString(seed),
		"BASEA_TLS_CERT":            server.Cert,
		"BASEA_TLS_KEY":             server.Key,
		"BASEA_TLS_CA":              server.CA,
		"BASEA_AMQP_URL":            testenv.AMQPURL(t),
		"BASEA_AMQP_EXCHANGE":       testenv.UniqueName(t, "x"),
		"BASEA_CHECKPOINT_INTERVAL": "200ms",
		"BASEA_CHAIN_INTERVAL":      "50ms",
	}
	return e
}

// verifierKey is the public key of the log's signed heads.
func (e *env) verifierKey() string {
	seed, _ := base64.StdEncoding.DecodeString(e.vars["BASEA_AUDIT_SIGNING_KEY"])
	k, err := audit.VerifierKeyOf(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

func (e *env) issue(identity string, hosts ...string) pki.Files {
	e.t.Helper()
	leaf, err := e.ca.Issue(identity, hosts...)
	if err != nil {
		e.t.Fatal(err)
	}
	f, err := e.ca.Write(filepath.Join(e.certs), identity, leaf)
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// start runs Base A until stop is called (or the test ends).
func (e *env) start() (addr string, stop func()) {
	t := e.t
	t.Helper()
	ctx := testenv.Context(t)
	cfg, err := app.Load(ctx, config.Map(e.vars))
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.Serve(t, "base-a", func(ctx context.Context, glis, hlis net.Listener) error {
		return app.Serve(ctx, cfg, logging.Discard(), glis, hlis)
	})
	srv.WaitServing(t, "base-a", e.dial(srv.Addr, "gateway"))
	return srv.Addr, srv.Stop
}

// dial connects with a client certificate for identity.
func (e *env) dial(addr, identity string) *grpc.ClientConn {
	e.t.Helper()
	f := e.issue(identity)
	tlsCfg, err := pki.ClientConfig(f, "base-a")
	if err != nil {
		e.t.Fatal(err)
	}
	conn, err := grpcclient.New(addr, grpcclient.Options{TLS: tlsCfg})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func (e *env) people(addr, identity string) baseav1.PeopleServiceClient {
	return baseav1.NewPeopleServiceClient(e.dial(addr, identity))
}

func (e *env) auditor(addr string) baseav1.AuditServiceClient {
	return baseav1.NewAuditServiceClient(e.dial(addr, "strata-audit"))
}

// tamper runs sql as a superuser with triggers switched off, as someone
// covering their tracks would.
func tamper(t testing.TB, conn *pgx.Conn, sql string) {
	t.Helper()
	ctx := testenv.Context(t)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// adminConn connects to this test's database as the superuser; the
// caller closes it.
func (e *env) adminConn(ctx context.Context) *pgx.Conn {
	e.t.Helper()
	conn, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		e.t.Fatal(err)
	}
	return conn
}

// admin runs SQL as the superuser on this test's database.
func (e *env) admin(sql string, args ...any) {
	e.t.Helper()
	ctx := testenv.Context(e.t)
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// startSeeded starts Base A (as start does), loads the seeded people
// through the loader, and returns the gateway's People client too.
func (e *env) startSeeded() (addr string, stop func(), gw baseav1.PeopleServiceClient) {
	e.t.Helper()
	addr, stop = e.start()
	seed(e.t, e.people(addr, "basea-loader"))
	return addr, stop, e.people(addr, "gateway")
}

// seeded is how most tests begin: t's own Base A (newEnv), started with
// the people seeded (startSeeded).
func seeded(t *testing.T) (e *env, addr string, stop func(), gw baseav1.PeopleServiceClient) {
	t.Helper()
	e = newEnv(t)
	addr, stop, gw = e.startSeeded()
	return e, addr, stop, gw
}

// toolVars is the environment of a Base A command-line tool (reencrypt,
// seed): this test's settings, connecting as the application role.
func (e *env) toolVars() map[string]string {
	vars := map[string]string{}
	for k, v := range e.vars {
		vars[k] = v
	}
	vars["BASEA_DATABASE_URL"] = e.appURL
	return vars
}

// appPool is a pool on this test's database as the application role,
// closed when tb ends (tb: the test or sub-benchmark that uses it).
func (e *env) appPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(testenv.Context(tb), e.appURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// openStore is a store on appPool with this test's data keys and its own
// breaker (name), and the audit log's keys, as Base A's tools open them.
func (e *env) openStore(tb testing.TB, name string) (*store.Store, *audit.Keys) {
	tb.Helper()
	keys, err := crypto.ParseKeys(e.vars["BASEA_DATA_KEYS"], e.vars["BASEA_BLIND_INDEX_KEY"])
	if err != nil {
		tb.Fatal(err)
	}
	akeys, err := audit.ParseKeys(e.vars["BASEA_AUDIT_CHAIN_KEY"], e.vars["BASEA_AUDIT_SIGNING_KEY"])
	if err != nil {
		tb.Fatal(err)
	}
	return store.New(e.appPool(tb), keys, breaker.Standalone(breaker.Config{Name: name})), akeys
}
