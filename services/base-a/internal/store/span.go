package store

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// storeSpan starts a client span for a store call, a child of ctx's span
// from that span's provider (no span when ctx's records nothing). Its
// attributes name the operation, never a CPF, token or row.
func storeSpan(ctx context.Context, op string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer("github.com/strata-bureau/strata/services/base-a/internal/store").Start(ctx, "basea.store "+op,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("db.system.name", "postgresql"), attribute.String("db.operation.name", op)))
}

// endSpan ends a span storeSpan started; a span that is not recording is
// ctx's own (storeSpan started none) and is left alone.
func endSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, "store call failed")
	}
	span.End()
}
