package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// Batches published with a pipelined confirm window all arrive, across a
// connection kill, and a batch consumer receives them several at a time:
// the one that fails is requeued and delivered again, the others are not.
func TestBatchesArriveAcrossConnectionKillsAndAreConsumedInBatches(t *testing.T) {
	t.Parallel()
	brokerURL := testenv.AMQPURL(t)
	ctx := testenv.Context(t)
	upstream := hostOf(t, brokerURL)
	proxy := testenv.NewProxy(t, upstream)
	exchange := testenv.UniqueName(t, "x")
	pubClient, err := amqp.Dial(ctx, amqp.Config{URL: testenv.ProxyURL(brokerURL, upstream, proxy.Addr()), Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer pubClient.Close()
	subClient, err := amqp.Dial(ctx, amqp.Config{URL: brokerURL, Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer subClient.Close()
	key := testenv.UniqueName(t, "test.batch")
	q := amqp.Queue{Name: testenv.UniqueName(t, "q"), Bindings: []string{key}, Exchange: exchange}
	ch, err := subClient.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Declare(ch); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()

	pub := amqp.NewPublisher(pubClient, amqp.PublisherOptions{})
	const batches, size = 8, 100
	for b := range batches {
		msgs := make([]amqp.Message, size)
		for i := range msgs {
			msgs[i] = amqp.Message{ID: fmt.Sprintf("m-%d-%03d", b, i), Type: key, Body: []byte("x")}
		}
		if b == 3 {
			proxy.CutConnections(t)
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		errs := pub.PublishBatch(pctx, msgs)
		cancel()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("batch %d message %d: %v", b, i, err)
			}
		}
	}
	if errs := pub.PublishBatch(ctx, []amqp.Message{{ID: "", Type: key}}); errs[0] == nil {
		t.Fatal("a message without ID was accepted")
	}

	var mu sync.Mutex
	seen := map[string]int{}
	largest := 0
	failedOnce := false
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = subClient.ConsumeBatch(cctx, q, amqp.ConsumerOptions{Prefetch: 128}, amqp.BatchOptions{Wait: 50 * time.Millisecond},
			func(_ context.Context, ds []amqp.Delivery) []error {
				mu.Lock()
				defer mu.Unlock()
				largest = max(largest, len(ds))
				errs := make([]error, len(ds))
				for i, d := range ds {
					if d.ID == "m-5-050" && !failedOnce {
						failedOnce = true
						errs[i] = errors.New("transient")
						continue
					}
					seen[d.ID]++
				}
				return errs
			})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == batches*size {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if len(seen) != batches*size {
		t.Fatalf("consumed %d distinct messages of %d confirmed", len(seen), batches*size)
	}
	if largest < 10 {
		t.Fatalf("largest batch %d: messages were not consumed in batches", largest)
	}
	if seen["m-5-050"] != 1 || !failedOnce {
		t.Fatalf("failed message applied %d times after its failure", seen["m-5-050"])
	}
}
