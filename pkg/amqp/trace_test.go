package amqp_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// Every message carries its trace: one published in a request's context,
// and one relayed later with the traceparent its outbox row kept, each
// get a producer span in their trace and a consumer span that is its
// child, in the consumer's process (separate providers: two services).
func TestMessagesCarryTheirTraceFromPublisherToConsumer(t *testing.T) {
	t.Parallel()
	brokerURL := testenv.AMQPURL(t)
	ctx := testenv.Context(t)
	exchange := testenv.UniqueName(t, "x")

	pubSpans, subSpans := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	pubTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(pubSpans))
	subTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(subSpans))
	reader := sdkmetric.NewManualReader()
	subMP := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prop := propagation.TraceContext{}

	pubClient, err := amqp.Dial(ctx, amqp.Config{URL: brokerURL, Exchange: exchange, TracerProvider: pubTP, Propagator: prop})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pubClient.Close() }()
	subClient, err := amqp.Dial(ctx, amqp.Config{URL: brokerURL, Exchange: exchange, TracerProvider: subTP, MeterProvider: subMP, Propagator: prop})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = subClient.Close() }()

	q := amqp.Queue{Name: testenv.UniqueName(t, "q"), Bindings: []string{"t.#"}, Exchange: exchange}
	// Declare before publishing so nothing published is unroutable (a
	// fixed sleep waiting for Consume to declare it lost the messages on
	// a loaded machine).
	ch, err := subClient.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Declare(ch); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	got := make(chan trace.SpanContext, 4)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = subClient.Consume(cctx, q, amqp.ConsumerOptions{}, func(hctx context.Context, d amqp.Delivery) error {
			got <- trace.SpanContextFromContext(hctx)
			if d.Type == "t.poison" {
				return amqp.Permanent(context.Canceled)
			}
			return nil
		})
	}()
	pub := amqp.NewPublisher(pubClient, amqp.PublisherOptions{})
	reqCtx, reqSpan := pubTP.Tracer("t").Start(ctx, "request")
	if err := pub.Publish(reqCtx, amqp.Message{ID: "m1", Type: "t.live", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	reqSpan.End()
	const outboxTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if errs := pub.PublishBatch(ctx, []amqp.Message{{ID: "m2", Type: "t.relayed", Body: []byte("y"), Traceparent: outboxTP}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if err := pub.Publish(ctx, amqp.Message{ID: "m3", Type: "t.poison", Body: []byte("z")}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("message not delivered")
		}
	}
	stop()
	// Spans end after the handler returns; give the last one a moment.
	deadline := time.Now().Add(5 * time.Second)
	for len(subSpans.Ended()) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	producers := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range pubSpans.Ended() {
		if s.SpanKind() == trace.SpanKindProducer {
			producers[s.Name()] = s
		}
	}
	live, relayed := producers["publish t.live"], producers["publish t.relayed"]
	if live == nil || relayed == nil {
		t.Fatalf("producer spans missing: %v", producers)
	}
	if live.Parent().SpanID() != reqSpan.SpanContext().SpanID() || live.SpanContext().TraceID() != reqSpan.SpanContext().TraceID() {
		t.Fatal("the live publish is not a child of the request's span")
	}
	if relayed.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || relayed.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("the relayed publish lost its outbox row's trace: %s", relayed.SpanContext().TraceID())
	}
	consumers := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range subSpans.Ended() {
		if s.SpanKind() == trace.SpanKindConsumer {
			consumers[s.Name()] = s
		}
	}
	for name, prod := range map[string]sdktrace.ReadOnlySpan{"process t.live": live, "process t.relayed": relayed} {
		c := consumers[name]
		if c == nil {
			t.Fatalf("no consumer span %q: %v", name, consumers)
		}
		if c.Parent().SpanID() != prod.SpanContext().SpanID() || c.SpanContext().TraceID() != prod.SpanContext().TraceID() {
			t.Fatalf("%s is not a child of its producer's span", name)
		}
		attrs := map[string]string{}
		for _, a := range c.Attributes() {
			attrs[string(a.Key)] = a.Value.String()
		}
		if attrs["messaging.system"] != "rabbitmq" || attrs["messaging.destination.name"] != q.Name || attrs["messaging.operation.type"] != "process" {
			t.Fatalf("%s attributes: %v", name, attrs)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			seen[m.Name] = true
		}
	}
	for _, name := range []string{"messaging.client.consumed.messages", "messaging.process.duration", "strata.messaging.consumer.lag", "strata.messaging.dead_lettered"} {
		if !seen[name] {
			t.Errorf("metric %s not recorded (have %v)", name, seen)
		}
	}
}
