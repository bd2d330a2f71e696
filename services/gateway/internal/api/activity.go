package api

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
)

// Base C: GET /v1/activity/{cpf} and GET /v1/activity/{cpf}/movements,
// with Base C's basic credentials.

// BasicRequest carries Base C's basic credentials.
type BasicRequest struct {
	CPFPath
	Authorization string `header:"Authorization" maxLength:"1024" doc:"Basic <base64(user:password)> of a Base C account (required)"`
}

// LastQuery is the last bureau query of a CPF.
type LastQuery struct {
	QueriedAt *time.Time `json:"queried_at"`
	PartnerID string     `json:"partner_id"`
	ClientIP  string     `json:"client_ip"`
	Base      string     `json:"base"`
}

// lastQuery converts the last query (nil when there was none).
func lastQuery(q *basecv1.LastQuery) *LastQuery {
	if q == nil {
		return nil
	}
	return &LastQuery{QueriedAt: ts(q.GetQueriedAt()), PartnerID: q.GetPartnerId(), ClientIP: q.GetClientIp(), Base: q.GetBase()}
}

// Purchase is a card purchase.
type Purchase struct {
	AmountCents  int64      `json:"amount_cents"`
	Currency     string     `json:"currency"`
	Merchant     string     `json:"merchant"`
	Installments int32      `json:"installments"`
	OccurredAt   *time.Time `json:"occurred_at"`
}

// purchase converts the last purchase (nil when there was none).
func purchase(p *basecv1.Purchase) *Purchase {
	if p == nil {
		return nil
	}
	return &Purchase{AmountCents: p.GetAmountCents(), Currency: p.GetCurrency(), Merchant: p.GetMerchant(), Installments: p.GetInstallments(), OccurredAt: ts(p.GetOccurredAt())}
}

// Movement is a financial movement.
type Movement struct {
	AmountCents int64      `json:"amount_cents"`
	Currency    string     `json:"currency"`
	Direction   string     `json:"direction" enum:"credit,debit"`
	Description string     `json:"description"`
	OccurredAt  *time.Time `json:"occurred_at"`
}

// movements converts movements (never nil: an empty list is [] in JSON).
func movements(ms []*basecv1.Movement) []Movement {
	out := []Movement{}
	for _, m := range ms {
		dir := "credit"
		if m.GetDirection() == basecv1.Direction_DIRECTION_DEBIT {
			dir = "debit"
		}
		out = append(out, Movement{AmountCents: m.GetAmountCents(), Currency: m.GetCurrency(), Direction: dir, Description: m.GetDescription(), OccurredAt: ts(m.GetOccurredAt())})
	}
	return out
}

// ActivityResponse is a CPF's activity.
type ActivityResponse struct {
	Body struct {
		CPF          string     `json:"cpf"`
		LastQuery    *LastQuery `json:"last_query"`
		LastPurchase *Purchase  `json:"last_purchase"`
		Movements    []Movement `json:"movements"`
		Stale        bool       `json:"stale" doc:"true when served from cache while Base C's store is down"`
	}
}

// activityResponse converts an activity answer.
func activityResponse(resp *basecv1.GetActivityResponse) *ActivityResponse {
	a := resp.GetActivity()
	out := &ActivityResponse{}
	out.Body.CPF, out.Body.Stale, out.Body.Movements = a.GetCpf(), resp.GetStale(), movements(a.GetMovements())
	out.Body.LastQuery, out.Body.LastPurchase = lastQuery(a.GetLastQuery()), purchase(a.GetLastPurchase())
	return out
}

// toBaseC checks a Base C read's scope, CPF and basic credentials, and
// adds the credentials to the call.
func toBaseC(ctx context.Context, in *BasicRequest) (context.Context, Caller, string, error) {
	c, person, err := callerFor(ctx, apikey.ScopeBaseCRead, in.CPF)
	if err != nil {
		return nil, c, "", err
	}
	if !hasScheme(in.Authorization, "Basic") {
		return nil, c, "", missingCredential("Base C basic credentials: Authorization: Basic <base64(user:password)>")
	}
	return withCredential(ctx, in.Authorization), c, person, nil
}

// fromC is one call to Base C's ActivityService with the caller's
// credentials in cred (reads: retried on another replica), its answer
// converted.
func fromC[T, O any](cred context.Context, h *Handlers, convert func(T) O,
	fn func(context.Context, basecv1.ActivityServiceClient) (T, error)) (O, error) {
	resp, err := call(cred, h, h.Backends.C, "base C", true, func(ctx context.Context, conn *grpc.ClientConn) (T, error) {
		return fn(ctx, basecv1.NewActivityServiceClient(conn))
	})
	return converted(resp, err, convert)
}

func (h *Handlers) getActivity(ctx context.Context, in *BasicRequest) (*ActivityResponse, error) {
	cred, c, person, err := toBaseC(ctx, in)
	if err != nil {
		return nil, err
	}
	out, err := fromC(cred, h, activityResponse, func(ctx context.Context, a basecv1.ActivityServiceClient) (*basecv1.GetActivityResponse, error) {
		return a.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person})
	})
	if err == nil {
		h.Events.Queried(ctx, person, c.PartnerID, c.ClientIP, "base-c")
	}
	return out, err
}

// MovementsRequest pages through movements.
type MovementsRequest struct {
	BasicRequest
	From      time.Time `query:"from" doc:"RFC 3339, inclusive"`
	To        time.Time `query:"to" doc:"RFC 3339, exclusive"`
	Limit     int32     `query:"limit" minimum:"1" maximum:"100" default:"20"`
	PageToken string    `query:"page_token" maxLength:"512"`
}

// movementsRequest is the ListMovements message for a checked request.
func movementsRequest(person string, in *MovementsRequest) *basecv1.ListMovementsRequest {
	req := &basecv1.ListMovementsRequest{Cpf: person, Limit: in.Limit, PageToken: in.PageToken}
	if !in.From.IsZero() {
		req.From = timestamppb.New(in.From)
	}
	if !in.To.IsZero() {
		req.To = timestamppb.New(in.To)
	}
	return req
}

// MovementsResponse is a page of movements.
type MovementsResponse struct {
	Body struct {
		Movements     []Movement `json:"movements"`
		NextPageToken string     `json:"next_page_token,omitempty"`
	}
}

// movementsResponse converts a page of movements.
func movementsResponse(resp *basecv1.ListMovementsResponse) *MovementsResponse {
	out := &MovementsResponse{}
	out.Body.Movements, out.Body.NextPageToken = movements(resp.GetMovements()), resp.GetNextPageToken()
	return out
}

func (h *Handlers) listMovements(ctx context.Context, in *MovementsRequest) (*MovementsResponse, error) {
	cred, _, person, err := toBaseC(ctx, &in.BasicRequest)
	if err != nil {
		return nil, err
	}
	if err := checkToken("page_token", in.PageToken, 512); err != nil {
		return nil, err
	}
	req := movementsRequest(person, in)
	return fromC(cred, h, movementsResponse, func(ctx context.Context, a basecv1.ActivityServiceClient) (*basecv1.ListMovementsResponse, error) {
		return a.ListMovements(ctx, req)
	})
}
