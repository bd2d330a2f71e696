package api

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/origin"
	"github.com/strata-bureau/strata/pkg/telemetry"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
	subjectv1 "github.com/strata-bureau/strata/proto/gen/go/subject/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
	"github.com/strata-bureau/strata/services/gateway/internal/events"
)

// The gateway's contract tests run the real handlers, pools and problem
// mapping against in-process fake bases (gRPC over bufconn): every answer
// a base can give, and what the partner sees of it.

// at is the one instant every fake answer carries.
var at = timestamppb.New(time.Date(2026, 11, 22, 12, 30, 0, 0, time.UTC))

// fakeBase is one base's gRPC server. Every call records its incoming
// metadata and, when err is set, fails with it instead of answering.
type fakeBase struct {
	mu   sync.Mutex
	err  error
	md   map[string]metadata.MD // by full method
	lis  *bufconn.Listener
	srv  *grpc.Server
	hold chan struct{} // when set, calls wait for it to close
}

func (f *fakeBase) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeBase) received(method string) metadata.MD {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.md[method]
}

func (f *fakeBase) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.md[info.FullMethod] = md
	err, hold := f.err, f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func newFakeBase(t *testing.T, register func(*grpc.Server)) *fakeBase {
	f := &fakeBase{md: map[string]metadata.MD{}, lis: bufconn.Listen(1 << 20)}
	f.srv = grpc.NewServer(grpc.UnaryInterceptor(f.intercept))
	register(f.srv)
	go func() { _ = f.srv.Serve(f.lis) }()
	t.Cleanup(f.srv.Stop)
	return f
}

// fakeA answers Base A's people, audit and subject services.
type fakeA struct {
	baseav1.UnimplementedPeopleServiceServer
	baseav1.UnimplementedAuditServiceServer
	subjectv1.UnimplementedSubjectServiceServer
}

func (fakeA) RequestGrant(_ context.Context, req *baseav1.RequestGrantRequest) (*baseav1.RequestGrantResponse, error) {
	return &baseav1.RequestGrantResponse{GrantId: "g-1", Token: "sgt_token", Cpf: req.GetCpf(), Fields: req.GetFields(),
		Purpose: req.GetPurpose(), ExpiresAt: at, MaxUses: 1}, nil
}

func (fakeA) RevokeGrant(context.Context, *baseav1.RevokeGrantRequest) (*baseav1.RevokeGrantResponse, error) {
	return &baseav1.RevokeGrantResponse{}, nil
}

func fakeDebts() []*baseav1.Debt {
	return []*baseav1.Debt{{Creditor: "Banco X", ContractId: "c-1", AmountCents: 12345, Currency: "BRL", DueDate: "2026-12-01",
		Status: baseav1.DebtStatus_DEBT_STATUS_OPEN, CreatedAt: at, UpdatedAt: at}}
}

func (fakeA) GetPerson(ctx context.Context, req *baseav1.GetPersonRequest) (*baseav1.GetPersonResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("strata-audit-entry", "e-1"))
	return &baseav1.GetPersonResponse{Person: &baseav1.Person{Cpf: req.GetCpf(), Name: "Maria Silva",
		Address: &baseav1.Address{Street: "Rua A", Number: "1", Complement: "ap 2", District: "Centro", City: "São Paulo", State: "SP", PostalCode: "01000-000"},
		Debts:   fakeDebts(), Fields: []baseav1.Field{baseav1.Field_FIELD_NAME, baseav1.Field_FIELD_ADDRESS, baseav1.Field_FIELD_DEBTS}}}, nil
}

func (fakeA) ListDebts(ctx context.Context, req *baseav1.ListDebtsRequest) (*baseav1.ListDebtsResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("strata-audit-entry", "e-2"))
	return &baseav1.ListDebtsResponse{Cpf: req.GetCpf(), Debts: fakeDebts()}, nil
}

func fakeEntries() []*baseav1.AuditEntry {
	return []*baseav1.AuditEntry{{Id: "e-1", Seq: 7, At: at, PartnerId: "demo-bank", Caller: "gateway", Cpf: "52998224725",
		Purpose: baseav1.Purpose_PURPOSE_CREDIT_ANALYSIS, Reason: "loan application", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME},
		Outcome: baseav1.Outcome_OUTCOME_DENIED_WRONG_FIELD, ClientIp: "203.0.113.7", TraceId: "0af7651916cd43dd8448eb211c80319c"}}
}

func (fakeA) ListAccessLogs(context.Context, *baseav1.ListAccessLogsRequest) (*baseav1.ListAccessLogsResponse, error) {
	return &baseav1.ListAccessLogsResponse{Entries: fakeEntries(), NextPageToken: "Nw"}, nil
}

func (fakeA) GetAccessHistory(_ context.Context, req *baseav1.GetAccessHistoryRequest) (*baseav1.GetAccessHistoryResponse, error) {
	return &baseav1.GetAccessHistoryResponse{Cpf: req.GetCpf(), Entries: fakeEntries(), Since: at}, nil
}

func (fakeA) VerifyChain(context.Context, *baseav1.VerifyChainRequest) (*baseav1.VerifyChainResponse, error) {
	return &baseav1.VerifyChainResponse{Ok: true, CheckedEntries: 42, CheckpointsVerified: 3, PurgedThrough: 5, TreeVerifiedSize: 42}, nil
}

func fakeHead() *baseav1.GetHeadResponse {
	return &baseav1.GetHeadResponse{Note: []byte("strata audit\n42\nroot\n"), Size: 42, Root: []byte{1, 2, 3}, SignedAt: at, VerifierKey: "strata+abc"}
}

func (fakeA) GetHead(context.Context, *baseav1.GetHeadRequest) (*baseav1.GetHeadResponse, error) {
	return fakeHead(), nil
}

func (fakeA) GetProof(_ context.Context, req *baseav1.GetProofRequest) (*baseav1.GetProofResponse, error) {
	return &baseav1.GetProofResponse{EntryId: req.GetEntryId(), Seq: 7, LeafIndex: 6, LeafHash: []byte{4, 5}, Proof: [][]byte{{6}, {7}},
		Head: fakeHead(), LeafData: []byte("leaf")}, nil
}

func (fakeA) GetSubjectData(context.Context, *subjectv1.GetSubjectDataRequest) (*subjectv1.GetSubjectDataResponse, error) {
	return &subjectv1.GetSubjectDataResponse{Base: "base-a", Holds: true, Data: []string{"name", "debts: 1"}, AccessRecord: "every access",
		Accesses: []*subjectv1.Access{{At: at, PartnerId: "demo-bank", Who: "gateway", ClientIp: "203.0.113.7", What: "read name", Purpose: "credit_analysis"}}}, nil
}

// fakeB answers Base B's profile and subject services.
type fakeB struct {
	basebv1.UnimplementedProfileServiceServer
	subjectv1.UnimplementedSubjectServiceServer
}

func (fakeB) GetProfile(_ context.Context, req *basebv1.GetProfileRequest) (*basebv1.GetProfileResponse, error) {
	return &basebv1.GetProfileResponse{Profile: &basebv1.Profile{Cpf: req.GetCpf(), BirthDate: "1980-01-02", Age: 46,
		Address: &basebv1.Address{Street: "Rua B", Number: "2", City: "Recife", State: "PE", PostalCode: "50000-000"},
		Assets:  []*basebv1.Asset{{Id: "a-1", Kind: basebv1.AssetKind_ASSET_KIND_VEHICLE, Description: "car", ValueCents: 5000000, Currency: "BRL"}},
		IncomeSources: []*basebv1.IncomeSource{{Id: "i-1", Kind: basebv1.IncomeKind_INCOME_KIND_SALARY, MonthlyAmountCents: 800000, Currency: "BRL",
			Since: "2020-03-01"}}, UpdatedAt: at}}, nil
}

func (fakeB) GetScore(_ context.Context, req *basebv1.GetScoreRequest) (*basebv1.GetScoreResponse, error) {
	return &basebv1.GetScoreResponse{Score: &basebv1.Score{Cpf: req.GetCpf(), Score: 712, Band: basebv1.Band_BAND_HIGH,
		Reasons: []*basebv1.ScoreReason{{Code: "R01", Description: "stable income"}}, ModelVersion: "v3"}, Stale: true}, nil
}

func (fakeB) GetSubjectData(context.Context, *subjectv1.GetSubjectDataRequest) (*subjectv1.GetSubjectDataResponse, error) {
	return &subjectv1.GetSubjectDataResponse{Base: "base-b", Holds: false, AccessRecord: "the latest access only"}, nil
}

// fakeC answers Base C's activity and subject services.
type fakeC struct {
	basecv1.UnimplementedActivityServiceServer
	subjectv1.UnimplementedSubjectServiceServer
}

func fakeMovements() []*basecv1.Movement {
	return []*basecv1.Movement{{Id: "m-1", AmountCents: 1500, Currency: "BRL", Direction: basecv1.Direction_DIRECTION_DEBIT, Description: "market", OccurredAt: at},
		{Id: "m-2", AmountCents: 900000, Currency: "BRL", Direction: basecv1.Direction_DIRECTION_CREDIT, Description: "salary", OccurredAt: at}}
}

func (fakeC) GetActivity(_ context.Context, req *basecv1.GetActivityRequest) (*basecv1.GetActivityResponse, error) {
	return &basecv1.GetActivityResponse{Activity: &basecv1.Activity{Cpf: req.GetCpf(),
		LastQuery:    &basecv1.LastQuery{QueriedAt: at, PartnerId: "demo-bank", ClientIp: "203.0.113.7", Base: "base-a"},
		LastPurchase: &basecv1.Purchase{AmountCents: 4990, Currency: "BRL", Merchant: "Loja", Installments: 2, OccurredAt: at},
		Movements:    fakeMovements()}, Stale: true}, nil
}

func (fakeC) ListMovements(context.Context, *basecv1.ListMovementsRequest) (*basecv1.ListMovementsResponse, error) {
	return &basecv1.ListMovementsResponse{Movements: fakeMovements(), NextPageToken: "next"}, nil
}

func (fakeC) GetSubjectData(context.Context, *subjectv1.GetSubjectDataRequest) (*subjectv1.GetSubjectDataResponse, error) {
	return &subjectv1.GetSubjectDataResponse{Base: "base-c", Holds: true, Data: []string{"movements: 2"}, AccessRecord: "the last query only"}, nil
}

// contract is the gateway's public API over the three fakes, with a
// caller (every scope unless a request says X-Test-Scopes) and a trace
// id on every request, and its log captured.
type contract struct {
	a, b, c *fakeBase
	handler http.Handler
	logMu   sync.Mutex
	log     bytes.Buffer
}

// traceID is the trace every contract request belongs to.
var traceID = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}

func (c *contract) Write(p []byte) (int, error) {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	return c.log.Write(p)
}

func (c *contract) logged() string {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	return c.log.String()
}

// testPool is a pool of one replica at target, closed when the test ends.
func testPool(tb testing.TB, name, target string, set *breaker.Set, o backend.Options) *backend.Pool {
	tb.Helper()
	p, err := backend.New(name, []string{target}, set, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

func newContract(t *testing.T, o backend.Options) *contract {
	t.Helper()
	c := &contract{}
	c.a = newFakeBase(t, func(s *grpc.Server) {
		baseav1.RegisterPeopleServiceServer(s, fakeA{})
		baseav1.RegisterAuditServiceServer(s, fakeA{})
		subjectv1.RegisterSubjectServiceServer(s, fakeA{})
	})
	c.b = newFakeBase(t, func(s *grpc.Server) {
		basebv1.RegisterProfileServiceServer(s, fakeB{})
		subjectv1.RegisterSubjectServiceServer(s, fakeB{})
	})
	c.c = newFakeBase(t, func(s *grpc.Server) {
		basecv1.RegisterActivityServiceServer(s, fakeC{})
		subjectv1.RegisterSubjectServiceServer(s, fakeC{})
	})
	logger := slog.New(logging.TraceHandler(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug})))
	set, _ := breaker.NewSet(telemetry.Noop().Meter("t"), logger)
	pool := func(name string, f *fakeBase) *backend.Pool {
		po := o
		po.Dialer = func(ctx context.Context, _ string) (net.Conn, error) { return f.lis.DialContext(ctx) }
		if po.Timeout == 0 {
			po.Timeout = 5 * time.Second
		}
		return testPool(t, name, "192.0.2.1:7000", set, po)
	}
	mux := http.NewServeMux()
	api := NewAPI(mux)
	bindings := &Bindings{TTL: time.Hour, cache: map[string]boundClients{"demo-bank": {list: "demo-bank,app-2", fetched: time.Now()}}}
	(&Handlers{Backends: Backends{A: pool("base-a", c.a), B: pool("base-b", c.b), C: pool("base-c", c.c)}, Events: events.New(nil, nil, logger),
		Logger: logger, Bindings: bindings}).Register(api)
	mux.HandleFunc("/", NotFound)
	all := strings.Join(apikey.Strings(apikey.Scopes()), ",")
	c.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scopes := r.Header.Get("X-Test-Scopes")
		if _, ok := r.Header["X-Test-Scopes"]; !ok {
			scopes = all
		}
		caller := Caller{PartnerID: "demo-bank", KeyID: "k1", Scopes: strings.Split(scopes, ","), ClientIP: "203.0.113.7"}
		ctx := context.WithValue(r.Context(), callerKey{}, caller)
		ctx = origin.Outgoing(ctx, origin.Origin{PartnerID: caller.PartnerID, ClientIP: caller.ClientIP})
		ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled}))
		Edge(64<<10, mux).ServeHTTP(w, r.WithContext(ctx))
	})
	return c
}
