// Package mongodb opens mongo-driver v2 clients for the Mongo-wire stores
// (MongoDB in production, FerretDB locally and in tests).
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Options for Connect.
type Options struct {
	// AppName is reported to the server.
	AppName string
	// MaxPoolSize caps connections (default 32).
	MaxPoolSize uint64
	// Timeout bounds every operation without its own deadline (default 5s).
	Timeout time.Duration
	// WaitFor keeps retrying the first ping this long (default 0: one try).
	WaitFor time.Duration
	// OnCommand, when set, is called with the name of every command sent
	// (find, update, insert, delete, findAndModify, ...), for metrics that
	// show how many store round trips the service makes.
	OnCommand func(name string)
	// Meter, when set, counts the commands sent by name
	// (strata_mongo_commands_total), after OnCommand.
	Meter metric.Meter
	// Tracing gives every command a client span (db.system.name mongodb,
	// the command's name; never its document, which holds CPFs), a child
	// of the operation's context's span, from that span's provider.
	Tracing bool
}

// Connect opens a client for uri and checks it with a ping.
func Connect(ctx context.Context, uri string, opts Options) (*mongo.Client, error) {
	if opts.MaxPoolSize == 0 {
		opts.MaxPoolSize = 32
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	co := options.Client().ApplyURI(uri).
		SetAppName(opts.AppName).
		SetMaxPoolSize(opts.MaxPoolSize).
		SetTimeout(opts.Timeout).
		SetServerSelectionTimeout(2 * time.Second).
		SetConnectTimeout(2 * time.Second)
	if err := countCommands(&opts); err != nil {
		return nil, err
	}
	mon := &event.CommandMonitor{}
	if opts.OnCommand != nil {
		on := opts.OnCommand
		mon.Started = func(_ context.Context, e *event.CommandStartedEvent) { on(e.CommandName) }
	}
	if opts.Tracing {
		traceCommands(mon, opts.AppName)
	}
	if mon.Started != nil {
		co.SetMonitor(mon)
	}
	if err := co.Validate(); err != nil {
		return nil, errors.New("mongodb: invalid URI")
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, errors.New("mongodb: invalid client options")
	}
	deadline := time.Now().Add(opts.WaitFor)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = client.Ping(pctx, nil)
		cancel()
		if err == nil {
			return client, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = client.Disconnect(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("mongodb: ping: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// countCommands makes opts.OnCommand also count each command on opts.Meter.
func countCommands(opts *Options) error {
	if opts.Meter == nil {
		return nil
	}
	ctr, err := opts.Meter.Int64Counter("strata_mongo_commands_total",
		metric.WithDescription("Commands sent to the Mongo-wire store, by command name."))
	if err != nil {
		return err
	}
	prev := opts.OnCommand
	opts.OnCommand = func(name string) {
		if prev != nil {
			prev(name)
		}
		ctr.Add(context.Background(), 1, metric.WithAttributes(attribute.String("command", name)))
	}
	return nil
}

// traceCommands adds a client span per command to mon.
func traceCommands(mon *event.CommandMonitor, app string) {
	var spans sync.Map // request id → trace.Span
	started := mon.Started
	mon.Started = func(ctx context.Context, e *event.CommandStartedEvent) {
		if started != nil {
			started(ctx, e)
		}
		parent := trace.SpanFromContext(ctx)
		if !parent.IsRecording() { // nothing to attach to (or not sampled): no span, no cost
			return
		}
		_, span := parent.TracerProvider().Tracer("github.com/strata-bureau/strata/pkg/mongodb").Start(ctx, e.CommandName+" "+e.DatabaseName,
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
				attribute.String("db.system.name", "mongodb"),
				attribute.String("db.namespace", e.DatabaseName),
				attribute.String("db.operation.name", e.CommandName)))
		spans.Store(e.RequestID, span)
	}
	end := func(id int64, err string) {
		if v, ok := spans.LoadAndDelete(id); ok {
			span := v.(trace.Span)
			if err != "" {
				span.SetStatus(codes.Error, err)
			}
			span.End()
		}
	}
	mon.Succeeded = func(_ context.Context, e *event.CommandSucceededEvent) { end(e.RequestID, "") }
	mon.Failed = func(_ context.Context, e *event.CommandFailedEvent) { end(e.RequestID, "command failed") }
}

// During adds to filter the condition that field lies in [from, to): from
// inclusive, to exclusive, a zero time leaving that side open, both zero
// adding nothing.
func During(filter bson.M, field string, from, to time.Time) {
	r := bson.M{}
	if !from.IsZero() {
		r["$gte"] = from
	}
	if !to.IsZero() {
		r["$lt"] = to
	}
	if len(r) > 0 {
		filter[field] = r
	}
}
