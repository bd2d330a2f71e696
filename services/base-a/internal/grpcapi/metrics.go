package grpcapi

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/proto/errorreasons"
)

// auditedMethods are the calls that write an audit entry, and the outcome
// a success records.
var auditedMethods = map[string]string{
	"/basea.v1.PeopleService/GetPerson":    "allowed",
	"/basea.v1.PeopleService/ListDebts":    "allowed",
	"/basea.v1.PeopleService/RequestGrant": "grant_issued",
	"/basea.v1.PeopleService/RevokeGrant":  "grant_revoked",
}

// Metrics are Base A's own figures.
type Metrics struct {
	outcomes      metric.Int64Counter
	verifications metric.Int64Counter
}

// NewMetrics registers strata_basea_audit_outcomes_total (by outcome) and
// strata_basea_audit_verifications_total (by result: ok, failed).
func NewMetrics(m metric.Meter) (*Metrics, error) {
	o, err := m.Int64Counter("strata_basea_audit_outcomes_total",
		metric.WithDescription("Audited Base A calls by the outcome they recorded (allowed, grant_issued, denied_*, not_found, audit_failed)."))
	if err != nil {
		return nil, err
	}
	v, err := m.Int64Counter("strata_basea_audit_verifications_total",
		metric.WithDescription("Verifications of the audit log by result: ok, or failed (the chain, a checkpoint or the tree does not verify)."))
	if err != nil {
		return nil, err
	}
	// Zero series, so an alert on a failure's rate has something to read
	// before the first one.
	for _, r := range []string{"ok", "failed"} {
		v.Add(context.Background(), 0, metric.WithAttributes(attribute.String("result", r)))
	}
	return &Metrics{outcomes: o, verifications: v}, nil
}

// Interceptor counts the outcome each audited call recorded, read from its
// answer: success is the method's own outcome, a grant refusal names its
// outcome in the ErrorInfo, NotFound is not_found and Unavailable with no
// data is audit_failed (or the database being away).
func (m *Metrics) Interceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ok, audited := auditedMethods[info.FullMethod]
		resp, err := handler(ctx, req)
		if audited && m != nil {
			m.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcomeOf(ok, err))))
		}
		return resp, err
	}
}

func outcomeOf(success string, err error) string {
	if err == nil {
		return success
	}
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if o := info.GetMetadata()[errorreasons.MetaOutcome]; o != "" {
				return o
			}
		}
	}
	switch st.Code() {
	case codes.NotFound:
		return "not_found"
	case codes.Unavailable:
		return "audit_failed"
	case codes.InvalidArgument:
		return "invalid"
	case codes.PermissionDenied, codes.Unauthenticated:
		return "denied"
	}
	if errors.Is(err, context.DeadlineExceeded) || st.Code() == codes.DeadlineExceeded {
		return "deadline"
	}
	return "error"
}

// verified counts one verification's result.
func (m *Metrics) verified(ctx context.Context, ok bool) {
	if m == nil {
		return
	}
	r := "ok"
	if !ok {
		r = "failed"
	}
	m.verifications.Add(ctx, 1, metric.WithAttributes(attribute.String("result", r)))
}
