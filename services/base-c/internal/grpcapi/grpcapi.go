// Package grpcapi is Base C's gRPC edge: basic-auth interceptor, request
// validation, and the mapping of domain errors to status codes.
package grpcapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/grpcserver"
	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
	"github.com/strata-bureau/strata/services/base-c/internal/accounts"
	"github.com/strata-bureau/strata/services/base-c/internal/activity"
	"github.com/strata-bureau/strata/services/base-c/internal/auth"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

type principalKey struct{}

// AuthInterceptor requires basic auth on every Base C RPC (health and
// reflection excepted).
func AuthInterceptor(a *auth.Authenticator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, "/basec.v1.") {
			return handler(ctx, req)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		vals := md.Get("authorization")
		if len(vals) != 1 {
			return nil, status.Error(codes.Unauthenticated, "basic credentials required")
		}
		user, pass, ok := auth.ParseBasic(vals[0])
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "malformed basic credentials")
		}
		// Only a caller trusted to speak for the partner (the gateway)
		// may name the partner and its client's address; anyone else is
		// throttled at its own connection's address.
		o := grpcserver.Origin(ctx)
		p, err := a.Authenticate(ctx, user, pass, auth.Source{PartnerID: o.PartnerID, ClientIP: o.ClientIP})
		if err != nil {
			return nil, toStatus(err)
		}
		return handler(context.WithValue(ctx, principalKey{}, p), req)
	}
}

func principal(ctx context.Context) auth.Principal {
	p, _ := ctx.Value(principalKey{}).(auth.Principal)
	return p
}

// storeErrors are the store's failures as every base answers them.
var storeErrors = grpcserver.StoreErrors{NotFound: domain.ErrNotFound, Invalid: domain.ErrInvalid, Unavailable: domain.ErrUnavailable,
	NotFoundMessage: "no activity for this CPF", UnavailableMessage: "activity store unavailable"}

// toStatus maps domain errors to gRPC codes: Base C's own, then the
// store's (storeErrors); anything else is masked by the server's
// interceptor (grpcserver.Mask).
func toStatus(err error) error {
	switch {
	case errors.Is(err, domain.ErrUnauthorized):
		return status.Error(codes.Unauthenticated, "invalid credentials")
	case errors.Is(err, domain.ErrThrottled):
		return status.Error(codes.ResourceExhausted, domain.ErrThrottled.Error())
	case errors.Is(err, domain.ErrOverloaded):
		return status.Error(codes.ResourceExhausted, domain.ErrOverloaded.Error())
	case errors.Is(err, domain.ErrExists):
		return status.Error(codes.AlreadyExists, "already exists")
	}
	return storeErrors.Status(err)
}

// ActivityServer implements basecv1.ActivityServiceServer.
type ActivityServer struct {
	basecv1.UnimplementedActivityServiceServer
	Activity *activity.Service
	Logger   *slog.Logger
}

// GetActivity returns last query, last purchase and latest movements.
func (s *ActivityServer) GetActivity(ctx context.Context, req *basecv1.GetActivityRequest) (*basecv1.GetActivityResponse, error) {
	c, err := grpcserver.CPF(req.GetCpf())
	if err != nil {
		return nil, err
	}
	a, stale, err := s.Activity.Get(ctx, c)
	if err != nil {
		return nil, toStatus(err)
	}
	return &basecv1.GetActivityResponse{Activity: toProto(a), Stale: stale}, nil
}

const (
	defaultLimit = 20
	maxLimit     = 100
)

// ListMovements pages through movements in a window, newest first.
func (s *ActivityServer) ListMovements(ctx context.Context, req *basecv1.ListMovementsRequest) (*basecv1.ListMovementsResponse, error) {
	c, err := grpcserver.CPF(req.GetCpf())
	if err != nil {
		return nil, err
	}
	f := domain.MovementFilter{CPF: c, Limit: int(req.GetLimit())}
	switch {
	case f.Limit == 0:
		f.Limit = defaultLimit
	case f.Limit < 0 || f.Limit > maxLimit:
		return nil, status.Errorf(codes.InvalidArgument, "limit must be between 1 and %d", maxLimit)
	}
	if req.GetFrom() != nil {
		f.From = req.GetFrom().AsTime()
	}
	if req.GetTo() != nil {
		f.To = req.GetTo().AsTime()
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, status.Error(codes.InvalidArgument, "from must be before to")
	}
	if tok := req.GetPageToken(); tok != "" {
		cur, err := DecodePageToken(tok, c)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "invalid page_token")
		}
		f.After = cur
	}
	// Ask for one more to know whether another page exists.
	want := f.Limit
	f.Limit++
	ms, err := s.Activity.ListMovements(ctx, f)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &basecv1.ListMovementsResponse{}
	if len(ms) > want {
		ms = ms[:want]
		last := ms[len(ms)-1]
		resp.NextPageToken = EncodePageToken(domain.Cursor{OccurredAt: last.OccurredAt, ID: last.ID}, c)
	}
	for _, m := range ms {
		resp.Movements = append(resp.Movements, movementProto(m))
	}
	return resp, nil
}

type pageToken struct {
	CPF string    `json:"c"`
	At  time.Time `json:"t"`
	ID  string    `json:"i"`
}

// EncodePageToken makes an opaque cursor bound to the CPF.
func EncodePageToken(c domain.Cursor, cpf string) string {
	b, _ := json.Marshal(pageToken{CPF: cpf, At: c.OccurredAt, ID: c.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodePageToken parses a cursor, refusing one made for another CPF.
func DecodePageToken(tok, cpf string) (*domain.Cursor, error) {
	if len(tok) > 512 {
		return nil, domain.ErrInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, domain.ErrInvalid
	}
	var pt pageToken
	if err := json.Unmarshal(b, &pt); err != nil || pt.CPF != cpf || pt.ID == "" || pt.At.IsZero() {
		return nil, domain.ErrInvalid
	}
	return &domain.Cursor{OccurredAt: pt.At, ID: pt.ID}, nil
}

func toProto(a *domain.Activity) *basecv1.Activity {
	out := &basecv1.Activity{Cpf: a.CPF}
	if q := a.LastQuery; q != nil {
		out.LastQuery = &basecv1.LastQuery{QueriedAt: timestamppb.New(q.QueriedAt), PartnerId: q.PartnerID, ClientIp: q.ClientIP, Base: q.Base}
	}
	if p := a.LastPurchase; p != nil {
		out.LastPurchase = &basecv1.Purchase{AmountCents: p.AmountCents, Currency: p.Currency, Merchant: p.Merchant,
			Installments: p.Installments, OccurredAt: timestamppb.New(p.OccurredAt)}
	}
	for _, m := range a.Movements {
		out.Movements = append(out.Movements, movementProto(m))
	}
	return out
}

func movementProto(m domain.Movement) *basecv1.Movement {
	d := basecv1.Direction_DIRECTION_CREDIT
	if m.Direction == domain.Debit {
		d = basecv1.Direction_DIRECTION_DEBIT
	}
	return &basecv1.Movement{Id: m.ID, AmountCents: m.AmountCents, Currency: m.Currency, Direction: d,
		Description: m.Description, OccurredAt: timestamppb.New(m.OccurredAt)}
}

// AccountServer implements basecv1.AccountServiceServer for admin accounts.
type AccountServer struct {
	basecv1.UnimplementedAccountServiceServer
	Accounts *accounts.Manager
}

func requireAdmin(ctx context.Context) error {
	if !principal(ctx).Admin {
		return status.Error(codes.PermissionDenied, "account management needs an admin account")
	}
	return nil
}

// CreateAccount adds a (non-admin) account.
func (s *AccountServer) CreateAccount(ctx context.Context, req *basecv1.CreateAccountRequest) (*basecv1.CreateAccountResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.Accounts.Create(ctx, req.GetUsername(), req.GetPassword(), false); err != nil {
		return nil, toStatus(err)
	}
	return &basecv1.CreateAccountResponse{}, nil
}

// RotatePassword sets a new password.
func (s *AccountServer) RotatePassword(ctx context.Context, req *basecv1.RotatePasswordRequest) (*basecv1.RotatePasswordResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.Accounts.Rotate(ctx, req.GetUsername(), req.GetNewPassword()); err != nil {
		return nil, toStatus(err)
	}
	return &basecv1.RotatePasswordResponse{}, nil
}

// DisableAccount disables an account.
func (s *AccountServer) DisableAccount(ctx context.Context, req *basecv1.DisableAccountRequest) (*basecv1.DisableAccountResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.Accounts.Disable(ctx, req.GetUsername()); err != nil {
		return nil, toStatus(err)
	}
	return &basecv1.DisableAccountResponse{}, nil
}
