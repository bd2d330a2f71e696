package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/strata-bureau/strata/pkg/pki"
)

// RabbitMQ is a private RabbitMQ node beside any other on the machine: its
// own node name, ports, epmd port and directories.
type RabbitMQ struct {
	URL string
	// TLSURL is the amqps:// URL when RabbitOptions.TLS was set.
	TLSURL   string
	Port     int
	epmdPort int
	dir      string
	node     string
	proc     *Proc
}

// RabbitOptions for StartRabbitMQ.
type RabbitOptions struct {
	Dir  string
	Port int // AMQP port; the distribution port is Port+1 and epmd Port+2
	Out  io.Writer
	// TLS, when set, adds an amqps listener on TLSPort with this server
	// certificate (clients verify it against TLS.CA; they authenticate by
	// password, not certificate).
	TLS     *pki.Files
	TLSPort int
}

// StartRabbitMQ starts the node and waits until it accepts AMQP logins.
func StartRabbitMQ(ctx context.Context, o RabbitOptions) (*RabbitMQ, error) {
	server, err := rabbitmqServer(ctx, o.Out)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"mnesia", "log", "home"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(o.Dir, 0o700); err != nil {
		return nil, err
	}
	password, err := ReadOrCreateSecret(filepath.Join(o.Dir, "strata.password"))
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(o.Port)
	confPath, err := writeRabbitConfig(o, addr, password)
	if err != nil {
		return nil, err
	}
	if err := chownTree(o.Dir, "rabbitmq"); err != nil {
		return nil, err
	}
	if !PortFree(addr) {
		return nil, fmt.Errorf("port %d is in use: is another strata-local running? (stop it, or set AMQP_URL)", o.Port)
	}
	epmd := o.Port + 2
	env := []string{
		"HOME=" + filepath.Join(o.Dir, "home"),
		"RABBITMQ_CONF_ENV_FILE=/dev/null",
		"RABBITMQ_NODENAME=strata" + strconv.Itoa(o.Port) + "@localhost",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(o.Port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(o.Port+1),
		"ERL_EPMD_PORT=" + strconv.Itoa(epmd),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(o.Dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(o.Dir, "log"),
		"RABBITMQ_FEATURE_FLAGS_FILE=" + filepath.Join(o.Dir, "feature_flags"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(o.Dir, "enabled_plugins"),
		"RABBITMQ_CONFIG_FILE=" + confPath,
	}
	p, err := StartProc("rabbitmq", []string{server}, env, o.Dir, filepath.Join(o.Dir, "rabbitmq.log"), "rabbitmq")
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: "amqp", User: url.UserPassword("strata", password), Host: addr, Path: "/"}
	var tlsURL string
	if o.TLS != nil {
		tu := *u
		tu.Scheme, tu.Host = "amqps", "127.0.0.1:"+strconv.Itoa(o.TLSPort)
		tlsURL = tu.String()
	}
	r := &RabbitMQ{URL: u.String(), TLSURL: tlsURL, Port: o.Port, epmdPort: epmd, dir: o.Dir, node: "strata" + strconv.Itoa(o.Port) + "@localhost", proc: p}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		conn, err := amqp.DialConfig(r.URL, amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err == nil {
			_ = conn.Close()
			return r, nil
		}
		select {
		case <-wctx.Done():
			r.Stop()
			return nil, fmt.Errorf("rabbitmq did not become ready (see %s)", filepath.Join(o.Dir, "rabbitmq.log"))
		case <-p.Done():
			r.stopEPMD()
			return nil, fmt.Errorf("rabbitmq exited at start (see %s)", filepath.Join(o.Dir, "rabbitmq.log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// writeRabbitConfig writes the node's rabbitmq.conf (listening on addr,
// with an amqps listener when o.TLS is set) and its enabled_plugins file,
// and returns the configuration's path.
func writeRabbitConfig(o RabbitOptions, addr, password string) (string, error) {
	conf := fmt.Sprintf(`# Written by strata-local on every start.
listeners.tcp.1 = %s
default_user = strata
default_pass = %s
loopback_users = none
log.console = true
log.console.level = warning
log.file = false
`, addr, password)
	if o.TLS != nil {
		tls, err := rabbitTLSConfig(o)
		if err != nil {
			return "", err
		}
		conf += tls
	}
	confPath := filepath.Join(o.Dir, "rabbitmq.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "enabled_plugins"), []byte("[].\n"), 0o600); err != nil {
		return "", err
	}
	return confPath, nil
}

// rabbitTLSConfig copies o.TLS's files into the node's directory and
// returns the configuration of its amqps listener.
func rabbitTLSConfig(o RabbitOptions) (string, error) {
	dir := filepath.Join(o.Dir, "tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for name, src := range map[string]string{"ca.crt": o.TLS.CA, "server.crt": o.TLS.Cert, "server.key": o.TLS.Key} {
		b, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf(`listeners.ssl.default = 127.0.0.1:%d
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
`, o.TLSPort, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")), nil
}

// Stop stops the node gracefully and the private epmd it started.
func (r *RabbitMQ) Stop() {
	if r == nil || r.proc == nil {
		return
	}
	r.proc.Stop(30 * time.Second)
	r.stopEPMD()
}

// Kill kills the node with SIGKILL (fault injection); Restart brings it back.
func (r *RabbitMQ) Kill() { r.proc.Kill() }

// Proc is the node's process.
func (r *RabbitMQ) Proc() *Proc { return r.proc }

func (r *RabbitMQ) stopEPMD() {
	args := []string{"epmd", "-port", strconv.Itoa(r.epmdPort), "-kill"}
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", "rabbitmq", "--"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, args[0], args[1:]...).Run()
}

// CtlCommand is the command line that runs rabbitmqctl against this node
// (as the rabbitmq user when we are root, with the node's cookie).
func (r *RabbitMQ) CtlCommand() []string {
	ctl := "/usr/lib/rabbitmq/bin/rabbitmqctl"
	if _, err := os.Stat(ctl); err != nil {
		ctl = "rabbitmqctl"
	}
	argv := []string{"env", "HOME=" + filepath.Join(r.dir, "home"), "ERL_EPMD_PORT=" + strconv.Itoa(r.epmdPort),
		"RABBITMQ_CONF_ENV_FILE=/dev/null", ctl, "-q", "-n", r.node}
	if os.Geteuid() == 0 {
		argv = append([]string{"runuser", "-u", "rabbitmq", "--"}, argv...)
	}
	return argv
}

// BrokerUser is a broker user and what it may do on vhost "/": the
// configure, write and read permissions are regular expressions over
// exchange and queue names; TopicWrite and TopicRead over routing keys on
// Exchange (RabbitMQ topic permissions).
type BrokerUser struct {
	Name, Password                  string
	Configure, Write, Read          string
	Exchange, TopicWrite, TopicRead string
}

// EnsureUsers creates or updates each user (password, permissions, topic
// permissions) in one rabbitmqctl import_definitions call through ctl (a
// CtlCommand); the definitions go on standard input and carry only salted
// password hashes.
func EnsureUsers(ctx context.Context, ctl []string, users []BrokerUser) error {
	type user struct {
		Name      string   `json:"name"`
		Hash      string   `json:"password_hash"`
		Algorithm string   `json:"hashing_algorithm"`
		Tags      []string `json:"tags"`
	}
	type perm struct {
		User      string `json:"user"`
		VHost     string `json:"vhost"`
		Configure string `json:"configure"`
		Write     string `json:"write"`
		Read      string `json:"read"`
	}
	type topicPerm struct {
		User     string `json:"user"`
		VHost    string `json:"vhost"`
		Exchange string `json:"exchange"`
		Write    string `json:"write"`
		Read     string `json:"read"`
	}
	var defs struct {
		Users            []user      `json:"users"`
		Permissions      []perm      `json:"permissions"`
		TopicPermissions []topicPerm `json:"topic_permissions"`
	}
	for _, u := range users {
		// rabbit_password_hashing_sha256: base64(salt ‖ SHA-256(salt ‖ password)).
		salt := make([]byte, 4)
		if _, err := rand.Read(salt); err != nil {
			return err
		}
		sum := sha256.Sum256(append(append([]byte{}, salt...), u.Password...))
		defs.Users = append(defs.Users, user{Name: u.Name, Hash: base64.StdEncoding.EncodeToString(append(salt, sum[:]...)),
			Algorithm: "rabbit_password_hashing_sha256", Tags: []string{}})
		defs.Permissions = append(defs.Permissions, perm{User: u.Name, VHost: "/", Configure: u.Configure, Write: u.Write, Read: u.Read})
		if u.Exchange != "" {
			defs.TopicPermissions = append(defs.TopicPermissions, topicPerm{User: u.Name, VHost: "/", Exchange: u.Exchange, Write: u.TopicWrite, Read: u.TopicRead})
		}
	}
	body, err := json.Marshal(defs)
	if err != nil {
		return err
	}
	argv := append(append([]string{}, ctl...), "import_definitions", "--format", "json")
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		// A node that accepts AMQP logins may still be finishing its boot
		// (or restarting after a fault-injection kill): retry that.
		if !strings.Contains(string(out), "start_app") || cctx.Err() != nil {
			return fmt.Errorf("rabbitmqctl import_definitions: %w: %s", err, strings.TrimSpace(string(out)))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
