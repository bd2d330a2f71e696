package amqp

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Delivery is one received message.
type Delivery struct {
	ID          string
	Type        string
	Body        []byte
	Timestamp   time.Time
	Headers     map[string]any
	Redelivered bool
	// UserID is the broker user that published the message (user_id,
	// verified by the broker).
	UserID string
}

// permanentError marks a message that can never be processed.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so the consumer rejects the message without requeue:
// it goes to the queue's dead-letter queue (a poison message).
func Permanent(err error) error { return permanentError{err: err} }

// IsPermanent reports whether err was wrapped by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Handler processes one delivery. nil acks it; an error wrapped by Permanent
// dead-letters it; any other error requeues it (up to the delivery limit).
// The context carries the publisher's trace context.
type Handler func(ctx context.Context, d Delivery) error

// ConsumerOptions for Consume.
type ConsumerOptions struct {
	// Prefetch is the number of unacknowledged messages in flight (default 32).
	Prefetch int
	// Tag names the consumer.
	Tag        string
	Propagator propagation.TextMapPropagator
	// OnSubscribe runs after every successful (re)subscription. Consumers of
	// transient broadcast queues use it to drop state they may have missed
	// invalidations for while disconnected.
	OnSubscribe func()
	// Producers, when set, accepts each event type only from the broker
	// users it names (the message's user_id, which the broker verifies);
	// anything else is dead-lettered without reaching the handler.
	Producers Producers
	// OnForeign is told of every delivery Producers refused (for a metric).
	OnForeign func(typ, userID string)
}

// Consume declares q and processes its messages until ctx ends, subscribing
// again whenever the connection or channel is replaced. Acks are manual and
// sent only after h returns, so nothing acknowledged is lost.
func (c *Client) Consume(ctx context.Context, q Queue, opts ConsumerOptions, h Handler) error {
	if opts.Prefetch <= 0 {
		opts.Prefetch = 32
	}
	for {
		err := c.consumeOnce(ctx, q, opts, func(d amqp.Delivery) { c.handle(ctx, q.Name, d, opts, h) })
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return nil
		}
		if err != nil {
			c.logger.Warn("consumer interrupted; resubscribing", "queue", q.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Client) consumeOnce(ctx context.Context, q Queue, opts ConsumerOptions, each func(amqp.Delivery)) error {
	return c.consumeOnceWith(ctx, q, opts, nil, each)
}

// consumeOnceWith subscribes once and calls each for every delivery;
// subscribed, when set, receives the delivery channel first.
func (c *Client) consumeOnceWith(ctx context.Context, q Queue, opts ConsumerOptions, subscribed func(<-chan amqp.Delivery), each func(amqp.Delivery)) error {
	ch, err := c.Channel(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	if q.Exchange == "" {
		q.Exchange = c.cfg.Exchange
	}
	if err := q.Declare(ch); err != nil {
		return err
	}
	if err := ch.Qos(opts.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, q.Name, opts.Tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", q.Name, err)
	}
	if !q.Transient {
		c.obs.subscribed(q.Name)
	}
	if opts.OnSubscribe != nil {
		opts.OnSubscribe()
	}
	if subscribed != nil {
		subscribed(deliveries)
	}
	for {
		select {
		case <-ctx.Done():
			// ConsumeWithContext cancels the consumer when ctx ends; give
			// back what the broker already pushed so the channel can close
			// (an undrained delivery channel blocks Close).
			drain(deliveries)
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("delivery channel closed")
			}
			each(d)
		}
	}
}

func drain(deliveries <-chan amqp.Delivery) {
	timeout := time.After(5 * time.Second)
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			_ = d.Nack(false, true)
		case <-timeout:
			return
		}
	}
}

func (c *Client) handle(ctx context.Context, queue string, d amqp.Delivery, opts ConsumerOptions, h Handler) {
	if !c.admit(ctx, queue, d, opts) {
		return
	}
	start := time.Now()
	hctx, span := c.deliveryContext(ctx, queue, d, opts)
	err := h(hctx, toDelivery(d))
	c.settle(hctx, queue, d, err)
	c.obs.processed(hctx, span, queue, d.Type, start, err)
	c.logDelivery(hctx, queue, d, start, err)
}

// deliveryContext continues the producer's trace (opts.Propagator, else
// the client's) and starts d's consumer span.
func (c *Client) deliveryContext(ctx context.Context, queue string, d amqp.Delivery, opts ConsumerOptions) (context.Context, trace.Span) {
	if opts.Propagator != nil && c.obs.propagator == nil {
		ctx = opts.Propagator.Extract(ctx, tableCarrier(d.Headers))
	}
	return c.obs.deliverySpan(ctx, queue, d)
}

func toDelivery(d amqp.Delivery) Delivery {
	return Delivery{
		ID:          d.MessageId,
		Type:        d.Type,
		Body:        d.Body,
		Timestamp:   d.Timestamp,
		Headers:     d.Headers,
		Redelivered: d.Redelivered,
		UserID:      d.UserId,
	}
}

// settle acks d after success, dead-letters it after a permanent error and
// requeues it after any other.
func (c *Client) settle(ctx context.Context, queue string, d amqp.Delivery, err error) {
	switch {
	case err == nil:
		if aerr := d.Ack(false); aerr != nil {
			c.logger.WarnContext(ctx, "ack failed; message will be redelivered", "message_id", d.MessageId, "err", aerr)
		}
	case IsPermanent(err):
		c.logger.ErrorContext(ctx, "message rejected to dead-letter queue", "message_id", d.MessageId, "type", d.Type, "err", err)
		c.obs.deadLettered(ctx, queue, "permanent")
		_ = d.Nack(false, false)
	default:
		c.logger.WarnContext(ctx, "message processing failed; requeued", "message_id", d.MessageId, "type", d.Type, "err", err)
		_ = d.Nack(false, true)
	}
}
