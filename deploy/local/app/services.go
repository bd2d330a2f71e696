package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
	"github.com/strata-bureau/strata/pkg/pki"
)

// serviceSpec describes one service binary and how to configure each replica.
type runSpec struct {
	spec    serviceSpec
	replica int
}

type serviceSpec struct {
	name     string // binary name and log prefix
	replicas int
	// env returns the replica's environment.
	env func(replica int) []string
	// grpcAddr is where the replica serves gRPC (waited on at start).
	grpcAddr func(replica int) string
	// migrate, when set, is the environment of `<name> migrate`, run once
	// (as the database owner) before the first replica starts.
	migrate []string
	// opsAddr is the replica's operator address (/metrics, detailed
	// /readyz, pprof).
	opsAddr func(replica int) string
}

// platform is the set of running services.
type platform struct {
	cfg     Config
	procs   []*stack.Proc
	specOf  map[string]runSpec
	exited  chan *stack.Proc
	demoEnv map[string]string
	broker  *broker
	lines   []string // where things listen
	tour    []string // ready-to-paste commands
}

// OIDCSettings are the OIDC_* variables `make run` passes on to Base B as
// BASEB_OIDC_* (besides OIDC_ISSUER and OIDC_AUDIENCE): how it reads
// permissions and the client from tokens, and how it introspects opaque
// tokens. See the README's provider recipes.
var OIDCSettings = []string{"SCOPE_CLAIMS", "CLIENT_SCOPES", "CLIENT_CLAIM", "TOKEN_TYPES",
	"INTROSPECTION", "INTROSPECTION_URL", "CLIENT_ID", "CLIENT_SECRET", "CLIENT_SECRET_FILE",
	"CACHE_TTL", "NEGATIVE_CACHE_TTL", "CACHE_SIZE", "TIMEOUT"}

// baseBOIDC turns the OIDC settings given to the launcher into Base B's.
func baseBOIDC(cfg Config) []string {
	var out []string
	for _, name := range OIDCSettings {
		if v, ok := cfg.OIDC[name]; ok && v != "" {
			out = append(out, "BASEB_OIDC_"+name+"="+v)
		}
	}
	return out
}

// DemoCPF is the CPF the demo data is about (529.982.247-25).
const DemoCPF = "52998224725"

// specs lists the services in start order. A binary that is not built is
// reported and skipped.
func specs(cfg Config, stores *Stores, secrets *secretStore, b *broker, demo map[string]string) ([]serviceSpec, error) {
	basecPassword, err := secrets.get("basec-demo.password")
	if err != nil {
		return nil, err
	}
	basea, err := baseaSpec(cfg, stores, secrets, b, demo)
	if err != nil {
		return nil, err
	}
	demo["STRATA_BASEC_USER"] = "demo-partner"
	demo["STRATA_BASEC_PASSWORD"] = basecPassword
	demo["STRATA_DEMO_CPF"] = DemoCPF
	issuerURL, audience := cfg.OIDCIssuer, cfg.OIDCAudience
	if issuerURL == "" {
		issuerURL = "http://" + cfg.GatewayAddr
	}
	if audience == "" {
		audience = "strata-base-b"
	}
	gateway, err := gatewaySpec(cfg, stores, secrets, b)
	if err != nil {
		return nil, err
	}
	certs, err := localPKI(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	bCert, cCert, export := certs["base-b"], certs["base-c"], certs["baseb-export"]
	demo["BASEB_EXPORT_ADDR"] = cfg.addr(7201)
	demo["BASEB_EXPORT_TLS_CERT"] = export.Cert
	demo["BASEB_EXPORT_TLS_KEY"] = export.Key
	demo["BASEB_EXPORT_TLS_CA"] = export.CA
	return []serviceSpec{
		basea,
		{
			name:     "base-b",
			replicas: 2,
			grpcAddr: func(i int) string { return cfg.addr(7200 + i) },
			opsAddr:  func(i int) string { return cfg.addr(9200 + i) },
			env: func(i int) []string {
				return append([]string{
					"BASEB_GRPC_ADDR=" + cfg.addr(7200+i),
					"BASEB_OPS_ADDR=" + cfg.addr(9200+i),
					"BASEB_MONGODB_URI=" + stores.MongoURI,
					"BASEB_MONGODB_DATABASE=" + cfg.DatabaseName("strata_baseb"),
					"BASEB_AMQP_URL=" + b.url["base-b"],
					"BASEB_AMQP_CA=" + stores.AMQPCA,
					fmt.Sprintf("BASEB_REPLICA_ID=base-b-%d", i),
					"BASEB_AMQP_PRODUCERS=" + b.producers(map[string]string{"debt.summary.changed": "base-a", "baseb.cache.invalidated": "base-b"}),
					"BASEB_OIDC_ISSUER=" + issuerURL,
					"BASEB_OIDC_AUDIENCE=" + audience,
					"BASEB_TLS_CERT=" + bCert.Cert,
					"BASEB_TLS_KEY=" + bCert.Key,
					"BASEB_TLS_CA=" + bCert.CA,
				}, baseBOIDC(cfg)...)
			},
		},
		basecSpec(cfg, stores, b, basecPassword, cCert),
		gateway,
	}, nil
}

// basecSpec is Base C's service: two replicas, the demo partner
// bootstrapped with password.
func basecSpec(cfg Config, stores *Stores, b *broker, password string, cert pki.Files) serviceSpec {
	return serviceSpec{
		name:     "base-c",
		replicas: 2,
		grpcAddr: func(i int) string { return cfg.addr(7300 + i) },
		opsAddr:  func(i int) string { return cfg.addr(9300 + i) },
		env: func(i int) []string {
			return []string{
				"BASEC_GRPC_ADDR=" + cfg.addr(7300+i),
				"BASEC_OPS_ADDR=" + cfg.addr(9300+i),
				fmt.Sprintf("BASEC_REPLICA_ID=base-c-%d", i),
				"BASEC_MONGODB_URI=" + stores.MongoURI,
				"BASEC_MONGODB_DATABASE=" + cfg.DatabaseName("strata_basec"),
				"BASEC_AMQP_URL=" + b.url["base-c"],
				"BASEC_AMQP_CA=" + stores.AMQPCA,
				"BASEC_AMQP_PRODUCERS=" + b.producers(map[string]string{"cpf.queried": "gateway",
					"card.purchase.recorded": "strata-ingest", "financial.movement.recorded": "strata-ingest",
					"basec.cache.invalidated": "base-c", "basec.credential.invalidated": "base-c", "basec.credential.failed": "base-c"}),
				"BASEC_BOOTSTRAP_USER=demo-partner",
				"BASEC_BOOTSTRAP_PASSWORD=" + password,
				"BASEC_TLS_CERT=" + cert.Cert,
				"BASEC_TLS_KEY=" + cert.Key,
				"BASEC_TLS_CA=" + cert.CA,
			}
		},
	}
}

// secretStore keeps generated local secrets in DataDir/secrets, one file
// each (0600), so a second make run reuses them.
type secretStore struct{ dir string }

func (s *secretStore) get(name string) (string, error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", err
	}
	return stack.ReadOrCreateSecret(filepath.Join(s.dir, name))
}

func startServices(ctx context.Context, cfg Config, stores *Stores, out io.Writer) (*platform, error) {
	p := &platform{cfg: cfg, specOf: map[string]runSpec{}, exited: make(chan *stack.Proc, 16), demoEnv: map[string]string{
		"STRATA_GATEWAY_URL": "http://" + cfg.GatewayAddr,
		"STRATA_OPS_URL":     "http://" + cfg.addr(gatewayOpsPort),
	}}
	secrets := &secretStore{dir: filepath.Join(cfg.DataDir, "secrets")}
	b, err := setupBroker(ctx, cfg, stores, secrets)
	if err != nil {
		return p, err
	}
	p.broker = b
	list, err := specs(cfg, stores, secrets, b, p.demoEnv)
	if err != nil {
		return p, err
	}
	for _, spec := range list {
		bin := filepath.Join(cfg.BinDir, spec.name)
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintf(out, "strata-local: %s is not built (%s missing); skipping it\n", spec.name, bin)
			continue
		}
		if spec.migrate != nil {
			if err := runMigrate(ctx, bin, spec.migrate); err != nil {
				return p, fmt.Errorf("%s migrate: %w", spec.name, err)
			}
		}
		for i := 1; i <= spec.replicas; i++ {
			name := spec.name
			if spec.replicas > 1 {
				name = fmt.Sprintf("%s-%d", spec.name, i)
			}
			p.specOf[name] = runSpec{spec: spec, replica: i}
			if err := p.startOne(ctx, name, true); err != nil {
				return p, err
			}
			p.lines = append(p.lines, fmt.Sprintf("  %-10s %-21s operator http://%s", name, spec.grpcAddr(i), spec.opsAddr(i)))
		}
	}
	return p, p.afterStart(ctx, cfg)
}

// afterStart collects the gateway's bootstrap credentials, seeds Base B's
// demo profile through its API, and prepares the tour.
func (p *platform) afterStart(ctx context.Context, cfg Config) error {
	if _, ok := p.specOf["gateway"]; !ok {
		return nil // the gateway is not built: nothing more to do
	}
	// The gateway opens its port before it migrates and bootstraps; it
	// answers HTTP only once the bootstrap file is written.
	if err := waitLive(ctx, "http://"+cfg.GatewayAddr+"/livez", 60*time.Second); err != nil {
		return fmt.Errorf("gateway not live: %w (see %s)", err, filepath.Join(cfg.DataDir, "logs", "gateway.log"))
	}
	if err := p.waitBasesServing(ctx); err != nil {
		return err
	}
	// Every base replica healthy in the gateway's eyes (its operator
	// readiness), so the first partner call does not race the gateway's
	// first mTLS connections.
	if err := waitBackends(ctx, "http://"+cfg.addr(gatewayOpsPort)+"/readyz", 30*time.Second); err != nil {
		return fmt.Errorf("gateway backends not ready: %w (see %s)", err, filepath.Join(cfg.DataDir, "logs"))
	}
	boot, err := readShellEnv(bootstrapFile(cfg))
	if err != nil {
		return fmt.Errorf("gateway bootstrap credentials: %w", err)
	}
	for k, v := range boot {
		p.demoEnv[k] = v
	}
	if cfg.OIDCIssuer == "" {
		if err := seedBaseB(ctx, cfg.DataDir, "http://"+cfg.GatewayAddr, boot["STRATA_OAUTH_CLIENT_ID"], boot["STRATA_OAUTH_CLIENT_SECRET"], cfg.addr(7201)); err != nil {
			return fmt.Errorf("demo profile in Base B: %w", err)
		}
	}
	p.tour = []string{
		"  . .data/demo.env",
		`  curl -s $STRATA_GATEWAY_URL/v1/activity/$STRATA_DEMO_CPF -H "X-Api-Key: $STRATA_API_KEY" -u "$STRATA_BASEC_USER:$STRATA_BASEC_PASSWORD"`,
		`  TOKEN=$(curl -s $STRATA_GATEWAY_URL/oauth2/token -u "$STRATA_OAUTH_CLIENT_ID:$STRATA_OAUTH_CLIENT_SECRET" -d grant_type=client_credentials -d scope=base-b:read | sed -E 's/.*"access_token":"([^"]+)".*/\1/')`,
		`  curl -s $STRATA_GATEWAY_URL/v1/profiles/$STRATA_DEMO_CPF/score -H "X-Api-Key: $STRATA_API_KEY" -H "Authorization: Bearer $TOKEN"`,
		`  GRANT=$(curl -s $STRATA_GATEWAY_URL/v1/grants -H "X-Api-Key: $STRATA_API_KEY" -H 'Content-Type: application/json' -d '{"cpf":"529.982.247-25","purpose":"credit_analysis","reason":"loan application 4711","fields":["name","address","debts"]}' | sed -E 's/.*"token":"([^"]+)".*/\1/')`,
		`  curl -s $STRATA_GATEWAY_URL/v1/people/$STRATA_DEMO_CPF -H "X-Api-Key: $STRATA_API_KEY" -H "X-Strata-Grant: $GRANT"`,
		`  curl -s "$STRATA_GATEWAY_URL/v1/audit/access-logs?cpf=$STRATA_DEMO_CPF" -H "X-Api-Key: $STRATA_API_KEY"   # audit:own: demo-bank's entries only`,
		`  curl -s "$STRATA_GATEWAY_URL/v1/audit/access-history/$STRATA_DEMO_CPF" -H "X-Api-Key: $STRATA_AUDITOR_KEY"   # audit:read: the bureau's auditors`,
		"  open $STRATA_GATEWAY_URL/docs for the API reference",
	}
	return nil
}

// startOne starts (or restarts) the named process and waits for its port.
func (p *platform) startOne(ctx context.Context, name string, watch bool) error {
	rs := p.specOf[name]
	bin := filepath.Join(p.cfg.BinDir, rs.spec.name)
	// The standard OTEL_* variables the launcher was given reach every
	// service with the rest of its environment (StartProc passes it on);
	// each service is named after itself, and each replica is told apart by
	// service.instance.id, unless an override says otherwise.
	env := append(rs.spec.env(rs.replica), "OTEL_SERVICE_NAME="+rs.spec.name, "OTEL_RESOURCE_ATTRIBUTES="+resourceAttributes(p.cfg.OTelResourceAttributes, name))
	env = append(env, p.cfg.Overrides...)
	proc, err := stack.StartProc(name, []string{bin}, env, p.cfg.DataDir, filepath.Join(p.cfg.DataDir, "logs", name+".log"), "")
	if err != nil {
		return err
	}
	p.procs = append(p.procs, proc)
	if watch {
		go func() {
			<-proc.Done()
			if ctx.Err() == nil {
				p.exited <- proc
			}
		}()
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := stack.WaitTCP(wctx, rs.spec.grpcAddr(rs.replica), proc); err != nil {
		return fmt.Errorf("%s did not start: %w (see %s)", name, err, filepath.Join(p.cfg.DataDir, "logs", name+".log"))
	}
	return nil
}

// runMigrate runs `bin migrate` with env (the owner's credentials, which
// only this short-lived process sees) and waits for it.
func runMigrate(ctx context.Context, bin string, env []string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "migrate")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// stop stops services in reverse start order.
func (p *platform) stop(out io.Writer) {
	for i := len(p.procs) - 1; i >= 0; i-- {
		p.procs[i].Stop(15 * time.Second)
	}
	if len(p.procs) > 0 {
		fmt.Fprintf(out, "strata-local: stopped %d service process(es)\n", len(p.procs))
	}
}

func (p *platform) printTour(out io.Writer, demoEnvPath string) {
	if len(p.lines) > 0 {
		fmt.Fprintln(out, "strata-local: services")
		fmt.Fprintln(out, strings.Join(p.lines, "\n"))
	}
	fmt.Fprintf(out, "strata-local: demo credentials written to %s (load them with: . %s)\n", demoEnvPath, demoEnvPath)
	for _, k := range []string{"STRATA_OPS_URL", "STRATA_API_KEY", "STRATA_ADMIN_KEY", "STRATA_AUDITOR_KEY", "STRATA_OAUTH_CLIENT_ID", "STRATA_OAUTH_CLIENT_SECRET", "STRATA_BASEC_USER", "STRATA_BASEC_PASSWORD", "STRATA_DEMO_CPF"} {
		if v, ok := p.demoEnv[k]; ok {
			fmt.Fprintf(out, "  %s=%s\n", k, v)
		}
	}
	if len(p.tour) > 0 {
		fmt.Fprintln(out, "strata-local: try")
		fmt.Fprintln(out, strings.Join(p.tour, "\n"))
	}
}

// resourceAttributes adds service.instance.id=name to the
// OTEL_RESOURCE_ATTRIBUTES the launcher was given.
func resourceAttributes(given, name string) string {
	if given == "" {
		return "service.instance.id=" + name
	}
	return given + ",service.instance.id=" + name
}
