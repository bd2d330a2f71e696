package platform

import (
	"context"
	"sync"

	"github.com/strata-bureau/strata/pkg/amqp"
)

// Broadcast is a replica's own queue of the other replicas' cache
// invalidations (Base B's and Base C's). The queue is transient: what is
// sent while the replica is disconnected is lost with it, so every
// subscription first drops what the replica cached (reset), and until the
// first one the replica would miss invalidations (Subscribed).
type Broadcast struct {
	p          *Platform
	q          amqp.Queue
	opts       amqp.ConsumerOptions
	handle     amqp.Handler
	reset      func()
	subscribed chan struct{}
	once       sync.Once
}

// Broadcast consumes q with opts (without a consumer tag) and handle,
// running reset on every subscription.
func (p *Platform) Broadcast(q amqp.Queue, opts amqp.ConsumerOptions, handle amqp.Handler, reset func()) *Broadcast {
	opts.Tag = ""
	return &Broadcast{p: p, q: q, opts: opts, handle: handle, reset: reset, subscribed: make(chan struct{})}
}

// Run consumes the broadcast queue until ctx ends.
func (b *Broadcast) Run(ctx context.Context) error {
	opts := b.opts
	opts.OnSubscribe = func() {
		b.reset()
		b.once.Do(func() { close(b.subscribed) })
	}
	return b.p.MQ.Consume(ctx, b.q, opts, b.handle)
}

// Subscribed is closed after the queue's first subscription (and reset).
func (b *Broadcast) Subscribed() <-chan struct{} { return b.subscribed }

// WhenSubscribed runs f once the queue is first subscribed, or nothing if
// ctx ends first: the body of a Serve's readiness step.
func (b *Broadcast) WhenSubscribed(ctx context.Context, f func()) error {
	select {
	case <-b.subscribed:
		f()
	case <-ctx.Done():
	}
	return nil
}
