package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-bureau/strata/pkg/breaker"
)

// Message is one event to publish.
type Message struct {
	// ID is the message_id consumers dedupe on; required.
	ID string
	// Type is the event name; it is also the routing key.
	Type string
	// Body is the protobuf-encoded event.
	Body []byte
	// Timestamp defaults to now.
	Timestamp time.Time
	// Headers are extra AMQP headers.
	Headers map[string]any
	// Traceparent (W3C) is the trace the message belongs to when it is not
	// the publishing context's: an event relayed from an outbox keeps the
	// trace of the request that wrote it.
	Traceparent string
}

// ErrNacked means the broker refused the message.
var ErrNacked = errors.New("amqp: broker did not confirm the message")

// ErrNotConnected means the client is between connections.
var ErrNotConnected = errors.New("amqp: not connected to the broker")

// Publisher publishes persistent messages to Exchange and waits for the
// broker's confirm of each one. It is safe for concurrent use.
type Publisher struct {
	client     *Client
	breaker    *breaker.Breaker
	propagator propagation.TextMapPropagator

	mu sync.Mutex
	ch *amqp.Channel
}

// PublisherOptions for NewPublisher.
type PublisherOptions struct {
	// Breaker, when set, guards every publish attempt.
	Breaker *breaker.Breaker
	// Propagator injects the W3C traceparent header from the context.
	Propagator propagation.TextMapPropagator
}

// NewPublisher returns a publisher on client.
func NewPublisher(client *Client, opts PublisherOptions) *Publisher {
	return &Publisher{client: client, breaker: opts.Breaker, propagator: opts.Propagator}
}

func (p *Publisher) channel() (*amqp.Channel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	ch, err := p.client.TryChannel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("amqp: confirm mode: %w", err)
	}
	if err := DeclareExchange(ch, p.client.Exchange()); err != nil {
		_ = ch.Close()
		return nil, err
	}
	p.ch = ch
	return ch, nil
}

// Publish sends msg and returns once the broker has confirmed it. When the
// connection drops before the confirm arrives it publishes again on the new
// connection (so a consumer may see the message twice, and dedupes on ID),
// until ctx ends. With a breaker, an open breaker fails at once with an error
// wrapping breaker.ErrOpen so callers can keep the message and retry later.
func (p *Publisher) Publish(ctx context.Context, msg Message) error {
	if msg.ID == "" || msg.Type == "" {
		return errors.New("amqp: message ID and type are required")
	}
	sctx, span := p.client.obs.publishSpan(ctx, msg)
	err := p.publish(ctx, msg, p.publishing(sctx, msg))
	p.client.obs.published(ctx, span, msg.Type, err)
	return err
}

func (p *Publisher) publish(ctx context.Context, msg Message, pub amqp.Publishing) error {
	backoff := 20 * time.Millisecond
	for {
		err := p.attempt(ctx, msg.Type, pub)
		if err == nil {
			return nil
		}
		if errors.Is(err, breaker.ErrOpen) || errors.Is(err, ErrClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("amqp: publish %s: %w (last error: %v)", msg.Type, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (p *Publisher) attempt(ctx context.Context, key string, pub amqp.Publishing) error {
	do := func() error {
		// Fail the attempt at once while reconnecting: Publish retries with
		// backoff, and a breaker sees each failure and can open.
		ch, err := p.channel()
		if err != nil {
			return err
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.client.Exchange(), key, false, false, pub)
		if err != nil {
			return fmt.Errorf("amqp: publish: %w", err)
		}
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			// A nack, or the channel closed before the confirm arrived.
			return ErrNacked
		}
		return nil
	}
	if p.breaker == nil {
		return do()
	}
	return p.breaker.Run(do)
}

func (p *Publisher) publishing(ctx context.Context, msg Message) amqp.Publishing {
	if msg.Timestamp.IsZero() {
		msg.Timestamp = time.Now().UTC()
	}
	headers := amqp.Table{}
	for k, v := range msg.Headers {
		headers[k] = v
	}
	prop := p.propagator
	if prop == nil {
		prop = p.client.cfg.Propagator
	}
	if prop != nil {
		prop.Inject(ctx, tableCarrier(headers))
	}
	return amqp.Publishing{
		ContentType:  "application/x-protobuf",
		DeliveryMode: amqp.Persistent,
		MessageId:    msg.ID,
		Type:         msg.Type,
		// The broker refuses a user_id that is not the connection's user,
		// so consumers can trust it to name the producer.
		UserId:    p.client.user,
		Timestamp: msg.Timestamp,
		Headers:   headers,
		Body:      msg.Body,
	}
}

// PublishBatch publishes msgs with all their confirms outstanding at once
// (a pipelined confirm window of len(msgs)) instead of one round trip per
// message, and returns one error per message: nil once the broker
// confirmed it. Messages that fail for a transient reason are published
// again, as by Publish, until ctx ends; an open breaker or a closed client
// fails what is left at once, so the caller can keep it durably.
func (p *Publisher) PublishBatch(ctx context.Context, msgs []Message) []error {
	errs := make([]error, len(msgs))
	pubs := make([]amqp.Publishing, len(msgs))
	pending := make([]int, 0, len(msgs))
	spans := make([]trace.Span, len(msgs))
	for i, m := range msgs {
		if m.ID == "" || m.Type == "" {
			errs[i] = errors.New("amqp: message ID and type are required")
			continue
		}
		var sctx context.Context
		sctx, spans[i] = p.client.obs.publishSpan(ctx, m)
		pubs[i] = p.publishing(sctx, m)
		pending = append(pending, i)
	}
	defer func() {
		for i, s := range spans {
			if s != nil {
				p.client.obs.published(ctx, s, msgs[i].Type, errs[i])
			}
		}
	}()
	backoff := 20 * time.Millisecond
	for len(pending) > 0 {
		var failed []int
		do := func() error {
			failed = p.attemptBatch(ctx, msgs, pubs, pending, errs)
			if len(failed) > 0 {
				return errs[failed[0]]
			}
			return nil
		}
		var err error
		if p.breaker == nil {
			err = do()
		} else {
			err = p.breaker.Run(do)
		}
		if err == nil {
			return errs
		}
		if failed == nil {
			// The breaker refused the attempt: nothing was sent.
			failed = pending
		}
		if errors.Is(err, breaker.ErrOpen) || errors.Is(err, ErrClosed) {
			for _, i := range failed {
				errs[i] = err
			}
			return errs
		}
		select {
		case <-ctx.Done():
			for _, i := range failed {
				errs[i] = fmt.Errorf("amqp: publish %s: %w (last error: %v)", msgs[i].Type, ctx.Err(), errs[i])
			}
			return errs
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
		pending = failed
	}
	return errs
}

// attemptBatch publishes pending on one channel, then waits for every
// confirm; it records each outcome in errs and returns the failed indices.
func (p *Publisher) attemptBatch(ctx context.Context, msgs []Message, pubs []amqp.Publishing, pending []int, errs []error) []int {
	failed := []int{}
	ch, err := p.channel()
	if err != nil {
		for _, i := range pending {
			errs[i] = err
		}
		return append(failed, pending...)
	}
	dcs := make([]*amqp.DeferredConfirmation, len(pending))
	for k, i := range pending {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.client.Exchange(), msgs[i].Type, false, false, pubs[i])
		if err != nil {
			errs[i] = fmt.Errorf("amqp: publish: %w", err)
			continue
		}
		dcs[k] = dc
	}
	for k, i := range pending {
		if dcs[k] == nil {
			failed = append(failed, i)
			continue
		}
		ok, err := dcs[k].WaitContext(ctx)
		switch {
		case err != nil:
			errs[i] = err
			failed = append(failed, i)
		case !ok:
			errs[i] = ErrNacked
			failed = append(failed, i)
		default:
			errs[i] = nil
		}
	}
	return failed
}

// tableCarrier adapts amqp.Table to propagation.TextMapCarrier.
type tableCarrier amqp.Table

func (t tableCarrier) Get(key string) string {
	if v, ok := t[key].(string); ok {
		return v
	}
	return ""
}

func (t tableCarrier) Set(key, value string) { t[key] = value }

func (t tableCarrier) Keys() []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	return keys
}
