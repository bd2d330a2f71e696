// Package amqp is Strata's RabbitMQ client on amqp091-go: one connection
// that reconnects by itself, the shared topology (the durable topic exchange
// "strata.events", quorum queues with dead-letter queues), a publisher that
// waits for broker confirms, and consumers with manual acks that resubscribe
// after a reconnect.
//
// Delivery is at least once: a publish whose confirm is lost is sent again,
// so consumers dedupe on the message ID.
package amqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Exchange is the topic exchange every Strata event goes through.
const Exchange = "strata.events"

// DeadLetterExchange receives messages a consumer rejected for good.
const DeadLetterExchange = "strata.dlx"

// ErrClosed is returned after Close.
var ErrClosed = errors.New("amqp: client closed")

// Config of a client.
type Config struct {
	// URL is amqp://user:pass@host:port/vhost.
	URL string
	// Name is shown in the broker's connection list.
	Name   string
	Logger *slog.Logger
	// Heartbeat (default 5s) detects dead connections.
	Heartbeat time.Duration
	// MaxBackoff between reconnect attempts (default 2s).
	MaxBackoff time.Duration
	// Exchange overrides the topic exchange (default "strata.events"); tests
	// use a private one so they never see each other's events.
	Exchange string
	// CAFile, for an amqps:// URL, is the CA bundle the broker's
	// certificate must chain to (default: the system roots).
	CAFile string
	// TracerProvider, MeterProvider and Propagator, when set, give every
	// publish a producer span and every delivery a consumer span (a child
	// of its producer's, continued from the message's traceparent header),
	// and count messages sent, consumed and dead-lettered and the
	// consumers' lag.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// Client owns one AMQP connection and replaces it when it dies.
type Client struct {
	cfg    Config
	logger *slog.Logger
	user   string // the broker user, sent as user_id on every publish
	tls    *tls.Config
	obs    *instruments

	mu      sync.Mutex
	conn    *amqp.Connection
	ready   chan struct{} // closed while conn is usable
	closed  bool
	closing chan struct{}
	done    chan struct{}
}

// Dial connects, waiting up to ctx for the first connection, and keeps the
// connection alive in the background until Close.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	if cfg.Exchange == "" {
		cfg.Exchange = Exchange
	}
	uri, err := amqp.ParseURI(cfg.URL)
	if err != nil {
		return nil, errors.New("amqp: invalid URL")
	}
	var tlsCfg *tls.Config
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, errors.New("amqp: cannot read the CA file")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("amqp: the CA file holds no certificate")
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c := &Client{
		cfg:     cfg,
		obs:     newInstruments(cfg),
		user:    uri.Username,
		tls:     tlsCfg,
		logger:  cfg.Logger.With("component", "amqp"),
		ready:   make(chan struct{}),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	conn, err := c.dial()
	for err != nil {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("amqp: connect to %s: %w", redactURL(cfg.URL), err)
		case <-time.After(200 * time.Millisecond):
		}
		conn, err = c.dial()
	}
	c.setConn(conn)
	go c.supervise(conn)
	return c, nil
}

func (c *Client) dial() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	if c.cfg.Name != "" {
		props.SetClientConnectionName(c.cfg.Name)
	}
	var tlsCfg *tls.Config
	if c.tls != nil {
		tlsCfg = c.tls.Clone() // the driver sets ServerName on it
	}
	conn, err := amqp.DialConfig(c.cfg.URL, amqp.Config{
		TLSClientConfig: tlsCfg,
		Heartbeat:       c.cfg.Heartbeat,
		Locale:          "en_US",
		Properties:      props,
		Dial:            amqp.DefaultDial(5 * time.Second),
	})
	if err != nil {
		return nil, scrub(err)
	}
	return conn, nil
}

// scrub drops anything that may carry the URL (and its password).
func scrub(err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return fmt.Errorf("amqp error %d: %s", ae.Code, ae.Reason)
	}
	return errors.New("cannot reach broker")
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[invalid url]"
	}
	return u.Redacted()
}

func (c *Client) setConn(conn *amqp.Connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	close(c.ready)
}

func (c *Client) supervise(conn *amqp.Connection) {
	defer close(c.done)
	for {
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-c.closing:
			_ = conn.Close()
			return
		case err := <-closed:
			c.mu.Lock()
			c.ready = make(chan struct{})
			c.conn = nil
			c.mu.Unlock()
			if err != nil {
				c.logger.Warn("broker connection lost; reconnecting", "code", err.Code, "reason", err.Reason)
			} else {
				c.logger.Warn("broker connection closed; reconnecting")
			}
		}
		backoff := 50 * time.Millisecond
		for {
			select {
			case <-c.closing:
				return
			case <-time.After(backoff):
			}
			nc, err := c.dial()
			if err == nil {
				conn = nc
				c.setConn(conn)
				c.logger.Info("broker connection restored")
				break
			}
			backoff = min(backoff*2, c.cfg.MaxBackoff)
		}
	}
}

// Exchange is the topic exchange this client publishes to and binds on.
func (c *Client) Exchange() string { return c.cfg.Exchange }

// Connected reports whether a connection is up now (for readiness).
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil && !c.conn.IsClosed()
}

// Check is a health.CheckFunc.
func (c *Client) Check(context.Context) error {
	if !c.Connected() {
		return errors.New("broker not connected")
	}
	return nil
}

// Channel opens a channel, waiting for a connection up to ctx.
func (c *Client) Channel(ctx context.Context) (*amqp.Channel, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		conn, ready := c.conn, c.ready
		c.mu.Unlock()
		if conn != nil {
			ch, err := conn.Channel()
			if err == nil {
				return ch, nil
			}
			// The connection died under us; wait for the supervisor.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ready:
		}
	}
}

// TryChannel opens a channel on the current connection without waiting.
func (c *Client) TryChannel() (*amqp.Channel, error) {
	c.mu.Lock()
	conn, closed := c.conn, c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if conn == nil {
		return nil, ErrNotConnected
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, ErrNotConnected
	}
	return ch, nil
}

// Close closes the connection and stops reconnecting.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.closing)
	<-c.done
	return nil
}

// Queue describes a durable quorum queue bound to Exchange, with a
// dead-letter queue named Name+".dlq".
type Queue struct {
	Name string
	// Bindings are routing keys (topic patterns) on Exchange.
	Bindings []string
	// DeliveryLimit dead-letters a message redelivered more often than this
	// (default 5), so a message that crashes its consumer cannot loop forever.
	DeliveryLimit int
	// Exchange to bind on (default "strata.events"; Consume sets the
	// client's).
	Exchange string
	// Transient declares a classic exclusive auto-delete queue without a
	// dead-letter queue instead: one per replica, for broadcasts such as
	// cache invalidation that matter only while the replica runs.
	Transient bool
}

// DeadLetterName is the name of q's dead-letter queue.
func (q Queue) DeadLetterName() string { return q.Name + ".dlq" }

// DeclareExchange declares the topic exchange name and the dead-letter
// exchange; it is idempotent.
func DeclareExchange(ch *amqp.Channel, name string) error {
	if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", name, err)
	}
	if err := ch.ExchangeDeclare(DeadLetterExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", DeadLetterExchange, err)
	}
	return nil
}

// Declare declares the exchanges, q, its dead-letter queue and bindings.
func (q Queue) Declare(ch *amqp.Channel) error {
	if q.Name == "" {
		return errors.New("queue name is required")
	}
	if q.Exchange == "" {
		q.Exchange = Exchange
	}
	if err := DeclareExchange(ch, q.Exchange); err != nil {
		return err
	}
	if q.Transient {
		if _, err := ch.QueueDeclare(q.Name, false, true, true, false, nil); err != nil {
			return fmt.Errorf("declare queue %s: %w", q.Name, err)
		}
		return q.bind(ch)
	}
	limit := q.DeliveryLimit
	if limit <= 0 {
		limit = 5
	}
	if _, err := ch.QueueDeclare(q.DeadLetterName(), true, false, false, false, amqp.Table{
		amqp.QueueTypeArg: amqp.QueueTypeQuorum,
	}); err != nil {
		return fmt.Errorf("declare queue %s: %w", q.DeadLetterName(), err)
	}
	if err := ch.QueueBind(q.DeadLetterName(), q.Name, DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind %s: %w", q.DeadLetterName(), err)
	}
	if _, err := ch.QueueDeclare(q.Name, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
		"x-dead-letter-exchange":    DeadLetterExchange,
		"x-dead-letter-routing-key": q.Name,
		// at-least-once dead-lettering: a rejected message stays in the
		// source queue until the dead-letter queue has confirmed it.
		"x-dead-letter-strategy": "at-least-once",
		amqp.QueueOverflowArg:    amqp.QueueOverflowRejectPublish,
		"x-delivery-limit":       limit,
	}); err != nil {
		return fmt.Errorf("declare queue %s: %w", q.Name, err)
	}
	return q.bind(ch)
}

func (q Queue) bind(ch *amqp.Channel) error {
	if q.Exchange == "" {
		q.Exchange = Exchange
	}
	for _, key := range q.Bindings {
		if err := ch.QueueBind(q.Name, key, q.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s to %s: %w", q.Name, key, err)
		}
	}
	return nil
}
