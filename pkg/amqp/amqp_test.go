package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/testenv"
)

func TestDialErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := amqp.Dial(ctx, amqp.Config{URL: "amqp://user:sup3rs3cret@127.0.0.1:1/"})
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "sup3rs3cret") {
		t.Fatalf("password leaked: %v", err)
	}
	if _, err := amqp.Dial(ctx, amqp.Config{URL: "http://x:sup3rs3cret@host"}); err == nil || strings.Contains(err.Error(), "sup3rs3cret") {
		t.Fatalf("bad URL not rejected cleanly: %v", err)
	}
}

// collector records every delivered message ID.
type collector struct {
	mu    sync.Mutex
	seen  map[string]int
	total int
}

func (c *collector) handle(_ context.Context, d amqp.Delivery) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[d.ID]++
	c.total++
	return nil
}

func (c *collector) unique() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func hostOf(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// The foundation promise: publish with confirms, kill the AMQP connection
// mid-stream, and every message is still delivered after reconnecting.
func TestEveryConfirmedMessageArrivesAcrossConnectionKills(t *testing.T) {
	t.Parallel()
	brokerURL := testenv.AMQPURL(t)
	ctx := testenv.Context(t)
	upstream := hostOf(t, brokerURL)
	proxy := testenv.NewProxy(t, upstream)
	viaProxy := testenv.ProxyURL(brokerURL, upstream, proxy.Addr())

	exchange := testenv.UniqueName(t, "x")
	pubClient, err := amqp.Dial(ctx, amqp.Config{URL: viaProxy, Name: "test-publisher", Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer pubClient.Close()
	subClient, err := amqp.Dial(ctx, amqp.Config{URL: viaProxy, Name: "test-consumer", Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer subClient.Close()

	key := testenv.UniqueName(t, "test.event")
	q := amqp.Queue{Name: testenv.UniqueName(t, "q"), Bindings: []string{key}, Exchange: exchange}
	// Declare before publishing so nothing published is unroutable.
	ch, err := subClient.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Declare(ch); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()

	col := &collector{seen: map[string]int{}}
	cctx, stopConsumer := context.WithCancel(ctx)
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		_ = subClient.Consume(cctx, q, amqp.ConsumerOptions{Prefetch: 50}, col.handle)
	}()

	pub := amqp.NewPublisher(pubClient, amqp.PublisherOptions{})
	const total = 600
	var confirmed atomic.Int64
	pubErr := make(chan error, 1)
	go func() {
		for i := range total {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := pub.Publish(pctx, amqp.Message{ID: fmt.Sprintf("m-%04d", i), Type: key, Body: []byte("payload")})
			cancel()
			if err != nil {
				pubErr <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			confirmed.Add(1)
		}
		pubErr <- nil
	}()

	// Kill every connection through the proxy twice while messages flow.
	for _, at := range []int64{150, 400} {
		for confirmed.Load() < at {
			select {
			case err := <-pubErr:
				t.Fatalf("publisher stopped early: %v", err)
			case <-time.After(2 * time.Millisecond):
			}
		}
		proxy.CutConnections(t)
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for col.unique() < total && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stopConsumer()
	<-consumerDone
	if got := col.unique(); got != total {
		t.Fatalf("delivered %d distinct messages of %d confirmed", got, total)
	}
	t.Logf("sent=%d confirmed=%d delivered=%d distinct=%d duplicates=%d (connections killed twice)",
		total, confirmed.Load(), col.total, col.unique(), col.total-col.unique())
}

func TestPoisonMessageIsDeadLettered(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	client, err := amqp.Dial(ctx, amqp.Config{URL: testenv.AMQPURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	key := testenv.UniqueName(t, "test.poison")
	q := amqp.Queue{Name: testenv.UniqueName(t, "q"), Bindings: []string{key}}
	ch, err := client.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := q.Declare(ch); err != nil {
		t.Fatal(err)
	}
	pub := amqp.NewPublisher(client, amqp.PublisherOptions{})
	for _, id := range []string{"good-1", "poison", "good-2"} {
		if err := pub.Publish(ctx, amqp.Message{ID: id, Type: key, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	var good atomic.Int64
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = client.Consume(cctx, q, amqp.ConsumerOptions{}, func(_ context.Context, d amqp.Delivery) error {
			if d.ID == "poison" {
				return amqp.Permanent(errors.New("cannot decode"))
			}
			good.Add(1)
			return nil
		})
	}()
	var msg amqp091.Delivery
	var ok bool
	deadline := time.Now().Add(20 * time.Second)
	for !ok && time.Now().Before(deadline) {
		msg, ok, err = ch.Get(q.DeadLetterName(), true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel()
	<-done
	if !ok || msg.MessageId != "poison" {
		t.Fatalf("poison message not in %s (got ok=%v id=%q)", q.DeadLetterName(), ok, msg.MessageId)
	}
	if good.Load() != 2 {
		t.Fatalf("good messages processed: %d, want 2", good.Load())
	}
}

func TestOpenBreakerFailsPublishFast(t *testing.T) {
	t.Parallel()
	brokerURL := testenv.AMQPURL(t)
	ctx := testenv.Context(t)
	upstream := hostOf(t, brokerURL)
	proxy := testenv.NewProxy(t, upstream)
	client, err := amqp.Dial(ctx, amqp.Config{URL: testenv.ProxyURL(brokerURL, upstream, proxy.Addr())})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b := breaker.Standalone(breaker.Config{Name: "publisher", ConsecutiveFailures: 2, OpenFor: time.Minute})
	pub := amqp.NewPublisher(client, amqp.PublisherOptions{Breaker: b})
	proxy.Disable()
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err = pub.Publish(pctx, amqp.Message{ID: "x", Type: "test.nowhere"})
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("want breaker open while the broker is unreachable, got %v", err)
	}
	start := time.Now()
	err = pub.Publish(ctx, amqp.Message{ID: "y", Type: "test.nowhere"})
	if !errors.Is(err, breaker.ErrOpen) || time.Since(start) > time.Second {
		t.Fatalf("open breaker did not fail fast: %v after %s", err, time.Since(start))
	}
}
