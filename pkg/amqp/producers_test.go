package amqp_test

import (
	"context"
	"net/url"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/testenv"
)

func TestParseProducers(t *testing.T) {
	t.Parallel()
	p, err := amqp.ParseProducers(" a.b = x | y ; c=z ")
	if err != nil || !p.Admits("a.b", "y") || !p.Admits("c", "z") || p.Admits("c", "x") || p.Admits("d", "z") || p.Admits("c", "") {
		t.Fatalf("%v %v", p, err)
	}
	for _, bad := range []string{"", "a.b", "a.b=", "=x", ";;"} {
		if _, err := amqp.ParseProducers(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A service's AMQP_PRODUCERS is decoded by its configuration: a malformed
// value stops the load, naming the variable.
func TestProducersAreDecodedByTheConfiguration(t *testing.T) {
	t.Parallel()
	type cfg struct {
		Producers amqp.Producers `env:"AMQP_PRODUCERS, default=a.b=x|y"`
	}
	var c cfg
	if err := config.Load(context.Background(), "SVC_", &c, config.Map(nil)); err != nil || !c.Producers.Admits("a.b", "y") {
		t.Fatalf("default: %v %v", c.Producers, err)
	}
	err := config.Load(context.Background(), "SVC_", &cfg{}, config.Map(map[string]string{"SVC_AMQP_PRODUCERS": "a.b=x;c.d"}))
	if want := `config (SVC_*): SVC_AMQP_PRODUCERS: producers: "c.d" is not type=user|user`; err == nil || err.Error() != want {
		t.Fatalf("want %q, got %v", want, err)
	}
}

// Each service publishes only its own routing keys (topic permissions) and
// only as itself (user_id); a consumer accepts a type only from its owner,
// dead-letters anything else and says so.
func TestBrokerRefusesForeignRoutingKeysAndConsumersCheckTheProducer(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	exchange := testenv.UniqueName(t, "x")
	queue := testenv.UniqueName(t, "q")
	names := "^(" + regexp.QuoteMeta(exchange) + "|strata\\.dlx|" + regexp.QuoteMeta(queue) + ".*)$"
	owner := testenv.BrokerUser(t, "owner", testenv.BrokerPerms{Configure: names, Write: names, Read: names,
		Exchange: exchange, TopicWrite: `^debt\.summary\.changed$`, TopicRead: `^debt\.summary\.changed$`})
	other := testenv.BrokerUser(t, "other", testenv.BrokerPerms{Configure: names, Write: names, Read: names,
		Exchange: exchange, TopicWrite: `^cpf\.queried$`, TopicRead: `^$`})
	dial := func(u string) *amqp.Client {
		c, err := amqp.Dial(ctx, amqp.Config{URL: u, Exchange: exchange})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	ownerC, otherC, adminC := dial(owner), dial(other), dial(testenv.AMQPURL(t))
	user := func(raw string) string { u, _ := url.Parse(raw); return u.User.Username() }

	// The queue, declared by its consumer (the owner's user here).
	q := amqp.Queue{Name: queue, Exchange: exchange, Bindings: []string{"debt.summary.changed"}}
	ch, err := ownerC.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := q.Declare(ch); err != nil {
		t.Fatal(err)
	}

	// 1. Another service's credentials cannot publish the owner's type.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := amqp.NewPublisher(otherC, amqp.PublisherOptions{}).Publish(short, amqp.Message{ID: "forged", Type: "debt.summary.changed", Body: []byte("x")}); err == nil {
		t.Fatal("the broker accepted another service's routing key")
	}
	// ... nor claim to be the owner in user_id.
	raw, err := amqp091.Dial(other)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	closed := rch.NotifyClose(make(chan *amqp091.Error, 1))
	_ = rch.Publish(exchange, "cpf.queried", false, false, amqp091.Publishing{MessageId: "spoofed", Type: "cpf.queried", UserId: user(owner)})
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp091.PreconditionFailed {
			t.Fatalf("spoofed user_id: %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the broker accepted a spoofed user_id")
	}

	// 2. The owner's event is applied; the same type from a user allowed
	// to route it (the administrator here) is dead-lettered and counted.
	if err := amqp.NewPublisher(adminC, amqp.PublisherOptions{}).Publish(ctx, amqp.Message{ID: "from-admin", Type: "debt.summary.changed", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := amqp.NewPublisher(ownerC, amqp.PublisherOptions{}).Publish(ctx, amqp.Message{ID: "from-owner", Type: "debt.summary.changed", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	var applied, foreign atomic.Int64
	var appliedID atomic.Value
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ownerC.Consume(cctx, q, amqp.ConsumerOptions{
			Producers: amqp.Producers{"debt.summary.changed": {user(owner)}},
			OnForeign: func(typ, uid string) { foreign.Add(1) },
		}, func(_ context.Context, d amqp.Delivery) error {
			if d.UserID != user(owner) {
				t.Errorf("handler saw user_id %q", d.UserID)
			}
			appliedID.Store(d.ID)
			applied.Add(1)
			return nil
		})
	}()
	var dl amqp091.Delivery
	var ok bool
	for deadline := time.Now().Add(20 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if dl, ok, err = ch.Get(q.DeadLetterName(), true); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); applied.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done
	if !ok || dl.MessageId != "from-admin" {
		t.Fatalf("the foreign event is not in %s (ok=%v id=%q)", q.DeadLetterName(), ok, dl.MessageId)
	}
	if applied.Load() != 1 || appliedID.Load() != "from-owner" || foreign.Load() != 1 {
		t.Fatalf("applied %d (%v), foreign %d; want the owner's only, one refused", applied.Load(), appliedID.Load(), foreign.Load())
	}
}
