package amqp

import (
	"context"
	"errors"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-bureau/strata/pkg/breaker"
)

// instruments are the client's spans and metrics (OTel messaging semantic
// conventions). With no providers in Config they record nothing.
type instruments struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	exchange   string

	sent        metric.Int64Counter     // messaging.client.sent.messages
	consumed    metric.Int64Counter     // messaging.client.consumed.messages
	process     metric.Float64Histogram // messaging.process.duration
	lag         metric.Float64Histogram // strata.messaging.consumer.lag
	deadLetters metric.Int64Counter     // strata.messaging.dead_lettered
}

func newInstruments(cfg Config) *instruments {
	in := &instruments{propagator: cfg.Propagator, exchange: cfg.Exchange}
	if cfg.TracerProvider != nil {
		in.tracer = cfg.TracerProvider.Tracer("github.com/strata-bureau/strata/pkg/amqp")
	}
	if cfg.MeterProvider != nil {
		m := cfg.MeterProvider.Meter("github.com/strata-bureau/strata/pkg/amqp")
		in.sent, _ = m.Int64Counter("messaging.client.sent.messages", metric.WithUnit("{message}"),
			metric.WithDescription("Messages published (error.type set when the broker did not confirm them)."))
		in.consumed, _ = m.Int64Counter("messaging.client.consumed.messages", metric.WithUnit("{message}"),
			metric.WithDescription("Messages delivered to a handler."))
		in.process, _ = m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"),
			metric.WithDescription("Time a handler took to process a message."),
			metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
		in.lag, _ = m.Float64Histogram("strata.messaging.consumer.lag", metric.WithUnit("s"),
			metric.WithDescription("Time from a message's publication (its timestamp) to the start of its processing: how far a consumer is behind."),
			metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800))
		in.deadLetters, _ = m.Int64Counter("strata.messaging.dead_lettered", metric.WithUnit("{message}"),
			metric.WithDescription("Messages a consumer rejected to its dead-letter queue (poison or from a foreign producer)."))
	}
	return in
}

// publishSpan starts the producer span of msg: a child of the trace the
// message belongs to (msg.Traceparent, for an event relayed from an
// outbox, else ctx's).
func (in *instruments) publishSpan(ctx context.Context, msg Message) (context.Context, trace.Span) {
	if msg.Traceparent != "" {
		ctx = WithTraceparent(ctx, msg.Traceparent)
	}
	if in.tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return in.tracer.Start(ctx, "publish "+msg.Type, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(in.exchange),
			semconv.MessagingRabbitMQDestinationRoutingKey(msg.Type),
			semconv.MessagingMessageID(msg.ID),
		))
}

// published ends a producer span started by publishSpan and counts the
// outcome.
func (in *instruments) published(ctx context.Context, span trace.Span, typ string, err error) {
	attrs := []attribute.KeyValue{semconv.MessagingSystemRabbitMQ, semconv.MessagingOperationName("publish"),
		semconv.MessagingDestinationName(in.exchange), semconv.MessagingRabbitMQDestinationRoutingKey(typ)}
	if err != nil {
		attrs = append(attrs, semconv.ErrorTypeKey.String(errorType(err)))
	}
	if in.sent != nil {
		in.sent.Add(ctx, 1, metric.WithAttributes(attrs...))
	}
	if in.tracer == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, errorType(err))
	}
	span.End()
}

// deliverySpan continues the producer's trace from d's headers and starts
// the consumer span of d (a child of the producer's span).
func (in *instruments) deliverySpan(ctx context.Context, q string, d amqp.Delivery) (context.Context, trace.Span) {
	if in.propagator != nil {
		ctx = in.propagator.Extract(ctx, tableCarrier(d.Headers))
	}
	if in.lag != nil && !d.Timestamp.IsZero() {
		in.lag.Record(ctx, time.Since(d.Timestamp).Seconds(), metric.WithAttributes(
			semconv.MessagingSystemRabbitMQ, semconv.MessagingDestinationName(q), semconv.MessagingRabbitMQDestinationRoutingKey(d.Type)))
	}
	if in.tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return in.tracer.Start(ctx, "process "+d.Type, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(q),
			semconv.MessagingRabbitMQDestinationRoutingKey(d.Type),
			semconv.MessagingMessageID(d.MessageId),
		))
}

// processed ends a consumer span and records how its handling went.
func (in *instruments) processed(ctx context.Context, span trace.Span, q, typ string, start time.Time, err error) {
	attrs := []attribute.KeyValue{semconv.MessagingSystemRabbitMQ, semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(q), semconv.MessagingRabbitMQDestinationRoutingKey(typ)}
	if err != nil {
		attrs = append(attrs, semconv.ErrorTypeKey.String(errorType(err)))
	}
	if in.consumed != nil {
		in.consumed.Add(ctx, 1, metric.WithAttributes(attrs...))
		in.process.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrs...))
	}
	if in.tracer == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, errorType(err))
	}
	span.End()
}

// deadLettered counts a message rejected to q's dead-letter queue.
func (in *instruments) deadLettered(ctx context.Context, q, reason string) {
	if in.deadLetters != nil {
		in.deadLetters.Add(ctx, 1, metric.WithAttributes(semconv.MessagingSystemRabbitMQ, semconv.MessagingDestinationName(q),
			semconv.ErrorTypeKey.String(reason)))
	}
}

// subscribed starts q's dead-letter series at zero, so an alert on their
// increase has a series to read before the first one.
func (in *instruments) subscribed(q string) {
	if in.deadLetters != nil {
		for _, reason := range []string{"permanent", "foreign_producer"} {
			in.deadLetters.Add(context.Background(), 0, metric.WithAttributes(semconv.MessagingSystemRabbitMQ,
				semconv.MessagingDestinationName(q), semconv.ErrorTypeKey.String(reason)))
		}
	}
}

// errorType is a low-cardinality name for err (never its message, which
// may carry data).
func errorType(err error) string {
	switch {
	case IsPermanent(err):
		return "permanent"
	case errors.Is(err, ErrNacked):
		return "nacked"
	case errors.Is(err, ErrNotConnected):
		return "not_connected"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, breaker.ErrOpen):
		return "breaker_open"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	}
	return "_OTHER"
}

// Traceparent returns the W3C traceparent of ctx's span context ("" when
// it has none), to keep with an event that is published later, such as
// an outbox row.
func Traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// WithTraceparent returns ctx continuing the trace tp names (a remote
// parent); an invalid tp leaves ctx as it is.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
}

// logDelivery writes one debug line per processed message, with the
// consumer span's trace_id (the logger adds it from ctx).
func (c *Client) logDelivery(ctx context.Context, q string, d amqp.Delivery, start time.Time, err error) {
	if !c.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	c.logger.DebugContext(ctx, "message processed", "queue", q, "type", d.Type, "message_id", d.MessageId,
		"duration_ms", float64(time.Since(start).Microseconds())/1000, "ok", err == nil)
}
