//go:build chaos

// Package chaos is the fault-injection suite behind `make chaos`: each
// scenario starts private stores and the real service binaries, injects a
// fault (process kills, toxiproxy cuts and latency), and prints its figures.
package chaos

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-bureau/strata/deploy/local/app"
	"github.com/strata-bureau/strata/deploy/local/internal/platformtest"
	"github.com/strata-bureau/strata/deploy/local/internal/stack"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// figures collects every scenario's numbers for the final table.
var figures struct {
	sync.Mutex
	rows []string
}

func record(t *testing.T, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	figures.Lock()
	figures.rows = append(figures.rows, fmt.Sprintf("| %-38s | %s |", t.Name(), line))
	figures.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	figures.Lock()
	fmt.Println("\nCHAOS RESULTS")
	fmt.Println("| scenario                               | figures |")
	fmt.Println("|---|---|")
	for _, r := range figures.rows {
		fmt.Println(r)
	}
	figures.Unlock()
	os.Exit(code)
}

// world is one private platform: stores, proxies and service processes.
type world struct {
	t       *testing.T
	rabbit  *stack.RabbitMQ
	rabbitO stack.RabbitOptions
	pgProxy *testenv.Proxy
	mgProxy *testenv.Proxy
	bProxy  []*testenv.Proxy
	pl      *app.Platform
	env     map[string]string
	gw      string
	off     int
	stores  *app.Stores
	data    string
}

func (w *world) dataDir() string { return w.data }

func freePort(t *testing.T) int {
	p, err := stack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newWorld starts PostgreSQL, RabbitMQ and FerretDB privately (so a test
// may kill them), toxiproxies in front of PostgreSQL, Mongo and each Base B
// replica, and every service.
func newWorld(t *testing.T) *world {
	t.Helper()
	bin := os.Getenv("STRATA_E2E_BIN_DIR")
	if bin == "" {
		t.Fatal("STRATA_E2E_BIN_DIR must name the built binaries (make chaos sets it)")
	}
	// Not t.TempDir(): its parent is private to us, and PostgreSQL and
	// RabbitMQ run as their own users.
	dir, err := os.MkdirTemp("", "strata-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	if os.Getenv("STRATA_CHAOS_KEEP") == "" {
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
	} else {
		t.Logf("keeping %s", dir)
	}
	ctx := context.Background()
	pg, err := stack.StartPostgres(ctx, stack.PostgresOptions{Dir: filepath.Join(dir, "pg"), Port: freePort(t), Ephemeral: true, Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	w := &world{t: t}
	// A free port can be taken between the check and the start: retry.
	for attempt := 0; ; attempt++ {
		w.rabbitO = stack.RabbitOptions{Dir: filepath.Join(dir, fmt.Sprintf("rabbit%d", attempt)), Port: rabbitPort(t), Out: io.Discard}
		w.rabbit, err = stack.StartRabbitMQ(ctx, w.rabbitO)
		if err == nil {
			break
		}
		if b, rerr := os.ReadFile(filepath.Join(w.rabbitO.Dir, "rabbitmq.log")); rerr == nil && len(b) > 0 {
			t.Logf("rabbitmq start %d failed: %s", attempt, platformtest.Tail(string(b), 800))
		}
		if attempt == 2 {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { w.rabbit.Stop() })
	fe, err := stack.StartFerret(ctx, filepath.Join(dir, "ferret"), "127.0.0.1:0", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fe.Stop)

	pgU, _ := url.Parse(pg.URL)
	w.pgProxy = testenv.NewProxy(t, pgU.Host)
	mgU, _ := url.Parse(fe.URI)
	w.mgProxy = testenv.NewProxy(t, mgU.Host)
	w.stores = &app.Stores{
		DatabaseURL: testenv.ProxyURL(pg.URL, pgU.Host, w.pgProxy.Addr()),
		MongoURI:    testenv.ProxyURL(fe.URI, mgU.Host, w.mgProxy.Addr()),
		AMQPURL:     w.rabbit.URL,
		RabbitCtl:   w.rabbit.CtlCommand(),
	}
	w.data = filepath.Join(dir, "data") // the same secrets and certificates on a retry
	// The proxies' own ports are ephemeral; those in front of Base B
	// follow each attempt's port offset.
	var cfg app.Config
	w.pl, cfg = platformtest.Start(t, ctx, platformtest.Options{Stores: w.stores, Config: app.Config{DataDir: w.data, BinDir: bin},
		Prepare: func(cfg *app.Config) {
			w.bProxy = nil
			for _, p := range []int{7201, 7202} {
				w.bProxy = append(w.bProxy, testenv.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", p+cfg.PortOffset)))
			}
			cfg.Overrides = []string{"GATEWAY_BASEB_ADDRS=" + w.bProxy[0].Addr() + "," + w.bProxy[1].Addr()}
		}})
	w.off, w.gw = cfg.PortOffset, cfg.GatewayAddr
	w.env = w.pl.Env()
	return w
}

func rabbitPort(t *testing.T) int {
	for range 100 {
		p := freePort(t)
		if stack.PortFree(fmt.Sprintf("127.0.0.1:%d", p+1)) && stack.PortFree(fmt.Sprintf("127.0.0.1:%d", p+2)) {
			return p
		}
	}
	t.Fatal("no ports for rabbitmq")
	return 0
}

// key makes an API key with every partner scope and no practical limit.
func (w *world) key() string {
	r := w.do("POST", "/v1/admin/partners/demo-bank/keys",
		`{"scopes":["base-a:grant","base-a:read","base-b:read","base-c:read","audit:read"],"rate_per_second":10000,"burst":100000,"daily_quota":100000000}`,
		"X-Api-Key", w.env["STRATA_ADMIN_KEY"])
	if r.status != 201 {
		w.t.Fatalf("key: %d %s", r.status, r.raw)
	}
	return r.body["key"].(string)
}

func (w *world) basic() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(w.env["STRATA_BASEC_USER"]+":"+w.env["STRATA_BASEC_PASSWORD"]))
}

func (w *world) token(scope string) string {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	req, _ := http.NewRequest("POST", "http://"+w.gw+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(w.env["STRATA_OAUTH_CLIENT_ID"], w.env["STRATA_OAUTH_CLIENT_SECRET"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&b)
	return b.AccessToken
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
	took   time.Duration
}

var client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func (w *world) do(method, path, body string, headers ...string) reply {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+w.gw+path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return reply{status: 0, raw: err.Error(), took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := reply{status: resp.StatusCode, header: resp.Header, raw: string(b), took: time.Since(start)}
	_ = json.Unmarshal(b, &out.body)
	return out
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*99/100]
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }
