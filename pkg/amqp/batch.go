package amqp

import (
	"context"
	"errors"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
)

// BatchHandler processes several deliveries at once and returns one error
// per delivery, with the meaning Handler's error has for one.
type BatchHandler func(ctx context.Context, ds []Delivery) []error

// BatchOptions for ConsumeBatch.
type BatchOptions struct {
	// Max deliveries per batch (default: the prefetch).
	Max int
	// Wait is how long a batch that is not full waits for more deliveries
	// after its first (default 20 ms). It bounds the delay the batching
	// adds to each message.
	Wait time.Duration
}

// ConsumeBatch is Consume for handlers that apply messages in bulk: it
// hands h up to Max deliveries at a time (whatever has arrived within Wait
// of the first) and acknowledges each one only after h returns, so nothing
// acknowledged is lost. The context passed to h carries the first
// delivery's trace context.
func (c *Client) ConsumeBatch(ctx context.Context, q Queue, opts ConsumerOptions, bo BatchOptions, h BatchHandler) error {
	if opts.Prefetch <= 0 {
		opts.Prefetch = 32
	}
	if bo.Max <= 0 || bo.Max > opts.Prefetch {
		bo.Max = opts.Prefetch
	}
	if bo.Wait <= 0 {
		bo.Wait = 20 * time.Millisecond
	}
	for {
		err := c.consumeBatchOnce(ctx, q, opts, bo, h)
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

func (c *Client) consumeBatchOnce(ctx context.Context, q Queue, opts ConsumerOptions, bo BatchOptions, h BatchHandler) error {
	batch := make([]amqp.Delivery, 0, bo.Max)
	timer := time.NewTimer(bo.Wait)
	defer timer.Stop()
	var deliveries <-chan amqp.Delivery
	// consumeOnce calls each for every delivery; the first of a batch
	// gathers the rest straight from the delivery channel.
	return c.consumeOnceWith(ctx, q, opts, func(ch <-chan amqp.Delivery) { deliveries = ch }, func(first amqp.Delivery) {
		batch = append(batch[:0], first)
		timer.Reset(bo.Wait)
	gather:
		for len(batch) < bo.Max {
			select {
			case d, ok := <-deliveries:
				if !ok {
					break gather
				}
				batch = append(batch, d)
			case <-timer.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		c.handleBatch(ctx, q.Name, batch, opts, h)
	})
}

func (c *Client) handleBatch(ctx context.Context, queue string, batch []amqp.Delivery, opts ConsumerOptions, h BatchHandler) {
	admitted := batch[:0:0]
	for _, d := range batch {
		if c.admit(ctx, queue, d, opts) {
			admitted = append(admitted, d)
		}
	}
	if batch = admitted; len(batch) == 0 {
		return
	}
	// One consumer span per message, each a child of its own producer's
	// span; the handler, which applies them together, runs in the first's.
	start := time.Now()
	ctxs := make([]context.Context, len(batch))
	spans := make([]trace.Span, len(batch))
	ds := make([]Delivery, len(batch))
	for i, d := range batch {
		ctxs[i], spans[i] = c.deliveryContext(ctx, queue, d, opts)
		ds[i] = toDelivery(d)
	}
	errs := h(ctxs[0], ds)
	for i, d := range batch {
		var err error
		if i < len(errs) {
			err = errs[i]
		}
		c.settle(ctxs[i], queue, d, err)
		c.obs.processed(ctxs[i], spans[i], queue, d.Type, start, err)
		c.logDelivery(ctxs[i], queue, d, start, err)
	}
}
