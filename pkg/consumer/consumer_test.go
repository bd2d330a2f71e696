package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/consumer"
	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/pkg/testenv"
)

var errAway = errors.New("store away")

// clock is a settable clock for the tests.
type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *clock) Advance(d time.Duration) { c.now.Add(int64(d)) }
func newClock(t time.Time) *clock        { c := &clock{}; c.now.Store(t.UnixNano()); return c }
func delivery(id string) amqp.Delivery   { return amqp.Delivery{ID: id, Type: "t"} }
func isAway(err error) bool              { return errors.Is(err, errAway) }
func dedupe(t *testing.T) *mongodb.Dedupe {
	t.Helper()
	_, db := testenv.MongoDB(t)
	d := mongodb.NewDedupe(db, "processed_messages")
	if err := d.EnsureIndexes(testenv.Context(t)); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEachMessageIsAppliedOnce(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	applied := map[string]int{}
	c, err := consumer.New(consumer.Options{Dedupe: dedupe(t), Apply: func(_ context.Context, d amqp.Delivery) error {
		applied[d.ID]++
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "a", "a", "b"} {
		if err := c.Handle(ctx, delivery(id)); err != nil {
			t.Fatal(err)
		}
	}
	if applied["a"] != 1 || applied["b"] != 1 {
		t.Fatalf("applied %v, want each once", applied)
	}
	if err := c.Handle(ctx, delivery("")); !amqp.IsPermanent(err) {
		t.Fatalf("a message without message_id: want a permanent error, got %v", err)
	}
}

func TestStoreOutagesAreRetriedAndFailuresAreNotMarked(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	var calls atomic.Int32
	fail := map[string]error{}
	c, err := consumer.New(consumer.Options{Dedupe: dedupe(t), Retryable: isAway, Backoff: time.Millisecond,
		Apply: func(_ context.Context, d amqp.Delivery) error {
			n := calls.Add(1)
			if d.ID == "flaky" && n < 3 {
				return errAway // the store is away twice, then back
			}
			return fail[d.ID]
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Handle(ctx, delivery("flaky")); err != nil || calls.Load() != 3 {
		t.Fatalf("flaky store: err %v after %d calls; want nil after 3", err, calls.Load())
	}
	fail["poison"] = amqp.Permanent(errors.New("undecodable"))
	fail["other"] = errors.New("not retryable")
	for _, id := range []string{"poison", "other"} {
		want := fail[id]
		calls.Store(10)
		err := c.Handle(ctx, delivery(id))
		if err == nil || calls.Load() != 11 {
			t.Fatalf("%s: err %v after %d calls; want %v at once", id, err, calls.Load()-10, want)
		}
		if amqp.IsPermanent(err) != amqp.IsPermanent(want) {
			t.Fatalf("%s: permanence lost: %v", id, err)
		}
		// Not marked: once the cause is fixed, a redelivery applies it.
		delete(fail, id)
		if err := c.Handle(ctx, delivery(id)); err != nil || calls.Load() != 12 {
			t.Fatalf("%s redelivered: err %v, applied %d times; want applied again", id, err, calls.Load()-10)
		}
	}
	// A retry gives up when the context ends, leaving the message unacked.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	fail["down"] = errAway
	if err := c.Handle(cctx, delivery("down")); !errors.Is(err, errAway) {
		t.Fatalf("store down until the context ends: got %v", err)
	}
}

// The dedupe store stays bounded: a steady flow of messages over many
// retention periods leaves at most a retention window (plus one pruning
// period) of ids, while a duplicate inside the window is still dropped.
func TestDedupeStoreStaysBounded(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	store := dedupe(t)
	clk := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	const perHour, retention = 20, 3 * time.Hour
	applied := 0
	c, err := consumer.New(consumer.Options{Dedupe: store, Retention: retention, Now: clk.Now,
		Apply: func(context.Context, amqp.Delivery) error { applied++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	most := int64(0)
	for hour := range 12 {
		for i := range perHour {
			if err := c.Handle(ctx, delivery(fmt.Sprintf("m-%d-%d", hour, i))); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Hour / perHour)
		}
		if _, err := c.Prune(ctx); err != nil {
			t.Fatal(err)
		}
		n, err := store.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, n)
	}
	if bound := int64(perHour * (retention/time.Hour + 1)); most > bound {
		t.Fatalf("dedupe store grew to %d ids; a %v retention at %d/h bounds it at %d", most, retention, perHour, bound)
	}
	if most < perHour*int64(retention/time.Hour) {
		t.Fatalf("dedupe store kept only %d ids: pruned inside the retention window", most)
	}
	// A message from two hours ago (inside the window) is still a duplicate.
	before := applied
	if err := c.Handle(ctx, delivery("m-10-0")); err != nil || applied != before {
		t.Fatalf("a duplicate inside the retention window was applied again (err %v)", err)
	}
	if seen, err := store.Seen(ctx, "m-0-0"); err != nil || seen {
		t.Fatalf("an id older than the retention was kept (seen %v, err %v)", seen, err)
	}
}

// Run prunes as soon as it starts, so a service restarted more often than
// the pruning period still prunes.
func TestRunPrunesAtStart(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	store := dedupe(t)
	clk := newClock(time.Now())
	if err := store.Mark(ctx, "old", clk.Now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := store.Mark(ctx, "new", clk.Now()); err != nil {
		t.Fatal(err)
	}
	c, err := consumer.New(consumer.Options{Dedupe: store, Retention: 24 * time.Hour, PruneEvery: time.Hour, Now: clk.Now,
		Apply: func(context.Context, amqp.Delivery) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		old, err := store.Seen(ctx, "old")
		if err != nil {
			t.Fatal(err)
		}
		if !old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not prune at start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if seen, err := store.Seen(ctx, "new"); err != nil || !seen {
		t.Fatalf("a recent id was pruned (seen %v, err %v)", seen, err)
	}
}
