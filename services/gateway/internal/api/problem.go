package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/proto/errorreasons"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
)

// Problem is an RFC 9457 problem detail. Type is a stable URN per kind of
// error, so clients branch on it rather than on the prose.
type Problem struct {
	Type   string              `json:"type" doc:"Stable identifier of the kind of problem (urn:strata:problem:...)"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail,omitempty"`
	Errors []*huma.ErrorDetail `json:"errors,omitempty"`

	retryAfter time.Duration
}

func (p *Problem) Error() string { return p.Detail }

// GetStatus implements huma.StatusError.
func (p *Problem) GetStatus() int { return p.Status }

// ContentType implements huma.ContentTypeFilter.
func (p *Problem) ContentType(string) string { return "application/problem+json" }

// GetHeaders implements huma.HeadersError.
func (p *Problem) GetHeaders() http.Header {
	h := http.Header{}
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((p.retryAfter+time.Second-1)/time.Second)))
	}
	return h
}

const urn = "urn:strata:problem:"

func problem(status int, kind, detail string) *Problem {
	return &Problem{Type: urn + kind, Title: http.StatusText(status), Status: status, Detail: detail}
}

// Problems the gateway returns.
func invalid(detail string) *Problem  { return problem(http.StatusBadRequest, "invalid-input", detail) }
func notFound(detail string) *Problem { return problem(http.StatusNotFound, "not-found", detail) }
func unavailable(what string) *Problem {
	return problem(http.StatusServiceUnavailable, "unavailable", what+" is unavailable; retry later")
}
func internal() *Problem {
	return problem(http.StatusInternalServerError, "internal", "internal error")
}

// NewHumaError makes huma's own errors (validation, body size, ...) RFC
// 9457 problems with stable types; bad input is 400, never 422.
func NewHumaError(status int, msg string, errs ...error) huma.StatusError {
	kind := "error"
	switch status {
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		status, kind = http.StatusBadRequest, "invalid-input"
	case http.StatusRequestEntityTooLarge:
		kind = "payload-too-large"
	case http.StatusNotFound:
		kind = "not-found"
	case http.StatusMethodNotAllowed:
		kind = "method-not-allowed"
	case http.StatusUnsupportedMediaType:
		kind = "unsupported-media-type"
	case http.StatusInternalServerError:
		return internal()
	}
	p := problem(status, kind, msg)
	for _, e := range errs {
		var d huma.ErrorDetailer
		if errors.As(e, &d) {
			p.Errors = append(p.Errors, d.ErrorDetail())
		} else if e != nil {
			p.Errors = append(p.Errors, &huma.ErrorDetail{Message: e.Error()})
		}
	}
	return p
}

// writeProblem writes a problem outside huma (middleware).
func writeProblem(w http.ResponseWriter, p *Problem) {
	for k, v := range p.GetHeaders() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// fromBackend maps a base's error to a problem, once, at this edge. 503
// means only "the base is unavailable, retry later"; its cause, and that of
// an error nobody expected (500), is logged with the trace id. Refusal
// reasons come typed, as google.rpc.ErrorInfo (proto/errorreasons), never
// parsed from a message.
func (h *Handlers) fromBackend(ctx context.Context, err error, base string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, backend.ErrPartnerBusy) {
		p := problem(http.StatusTooManyRequests, "too-many-concurrent-calls", "your calls in flight to "+base+" are at your share; retry when some finish")
		p.retryAfter = time.Second
		return p
	}
	if errors.Is(err, backend.ErrBusy) || errors.Is(err, backend.ErrUnavailable) || errors.Is(err, breaker.ErrOpen) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return h.unavailableBase(ctx, err, base)
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return h.unexpected(ctx, err, base)
	}
	st := se.GRPCStatus()
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		return invalid(msg)
	case codes.NotFound:
		return notFound(msg)
	case codes.Unauthenticated:
		return problem(http.StatusUnauthorized, "backend-credential-refused", base+" refused the credential: "+msg)
	case codes.PermissionDenied:
		if p := grantRefused(errorreasons.Of(err)); p != nil {
			return p
		}
		return problem(http.StatusForbidden, "backend-forbidden", base+" refused: "+msg)
	case codes.ResourceExhausted:
		p := problem(http.StatusTooManyRequests, "backend-throttled", base+": "+msg)
		p.retryAfter = 30 * time.Second
		return p
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return h.unavailableBase(ctx, err, base)
	}
	return h.unexpected(ctx, err, base)
}

// grantOutcomes are Base A's grant refusal reasons with the audit outcome
// each records, which the problem names.
var grantOutcomes = map[string]string{
	errorreasons.GrantUnknown: "denied_unknown_grant", errorreasons.GrantExpired: "denied_expired",
	errorreasons.GrantUsedUp: "denied_used_up", errorreasons.GrantRevoked: "denied_revoked",
	errorreasons.GrantWrongCPF: "denied_wrong_cpf", errorreasons.GrantWrongField: "denied_wrong_field",
	errorreasons.GrantWrongPartner: "denied_wrong_partner",
}

// grantRefused is the 403 for Base A's refusal of a grant (nil for any
// other reason): urn:strata:problem:grant-expired and so on.
func grantRefused(info *errdetails.ErrorInfo) *Problem {
	if info.GetDomain() != errorreasons.DomainBaseA {
		return nil
	}
	outcome, ok := grantOutcomes[info.GetReason()]
	if !ok {
		return nil
	}
	kind := "grant-" + strings.ReplaceAll(strings.TrimPrefix(outcome, "denied_"), "_", "-")
	return problem(http.StatusForbidden, kind, "the grant does not allow this read ("+outcome+")")
}

// unavailableBase is the 503 for a base that cannot answer now. A call
// the partner itself gave up on (its request's context ended) is not
// logged: nobody reads the answer.
func (h *Handlers) unavailableBase(ctx context.Context, err error, base string) error {
	if ctx.Err() != nil {
		return unavailable(base)
	}
	return h.masked(ctx, unavailable(base), fmt.Errorf("%s: %w", base, err))
}

// unexpected answers 500 without detail for an error no rule expected,
// logged with its cause.
func (h *Handlers) unexpected(ctx context.Context, err error, base string) error {
	return h.masked(ctx, internal(), fmt.Errorf("%s: %w", base, err))
}

// masked logs, once, the cause of an error answered with a generic
// problem p (500, or 503 "retry later"), with the trace id when the
// request has one, and returns p. The partner sees only p.
func (h *Handlers) masked(ctx context.Context, p *Problem, cause error) *Problem {
	return logMasked(ctx, h.Logger, p, cause)
}

// logMasked is masked for handlers outside Handlers (Admin, KeyAuth).
func logMasked(ctx context.Context, logger *slog.Logger, p *Problem, cause error) *Problem {
	if logger == nil {
		return p
	}
	// The logger (pkg/logging) adds the trace id of the request's span.
	attrs := []any{"status", p.Status, "problem", p.Type, "err", cause}
	level := slog.LevelWarn
	if p.Status >= http.StatusInternalServerError && p.Status != http.StatusServiceUnavailable {
		level = slog.LevelError
	}
	logger.Log(ctx, level, "masked error", attrs...)
	return p
}

// register declares an operation whose handler's errors are all
// problems: an error that is not one (a bug) is logged with its cause and
// answered 500 "internal error", instead of huma masking it unlogged.
func register[I, O any](api huma.API, logger *slog.Logger, op huma.Operation, handler func(context.Context, *I) (*O, error)) {
	huma.Register(api, op, func(ctx context.Context, in *I) (*O, error) {
		out, err := handler(ctx, in)
		if p := (*Problem)(nil); err != nil && !errors.As(err, &p) {
			return nil, logMasked(ctx, logger, internal(), fmt.Errorf("%s: %w", op.OperationID, err))
		}
		return out, err
	})
}

// NotFound answers unknown paths with a problem body too.
func NotFound(w http.ResponseWriter, _ *http.Request) {
	writeProblem(w, notFound("no such endpoint; see /openapi.json"))
}
