package app_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/origin"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/proto/eventtypes"
	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-c/app"
)

const (
	adminUser = "admin"
	adminPass = "admin-password-123"
)

// cluster is a set of Base C replicas sharing one database and broker.
type cluster struct {
	t        testing.TB
	db       *mongo.Database
	env      map[string]string
	exchange string
	queue    string
	pub      *amqp.Publisher
	mq       *amqp.Client
	ca       *testenv.CA
}

// tester is the identity the tests call with: allowed in every method
// group (TestMutualTLS checks the real groups with the real identities).
const tester = "basec-test"

func newCluster(t testing.TB, mongoURI string) *cluster {
	t.Helper()
	_, db := testenv.MongoDB(t)
	if mongoURI == "" {
		mongoURI = testenv.MongoURI(t)
	}
	amqpURL := testenv.AMQPURL(t)
	au, _ := url.Parse(amqpURL)
	admin := au.User.Username()
	c := &cluster{t: t, db: db, exchange: testenv.UniqueName(t, "x"), queue: testenv.UniqueName(t, "basec"), ca: testenv.NewCA(t)}
	server := c.ca.Issue("base-c", "base-c", "127.0.0.1")
	c.env = map[string]string{
		"BASEC_TLS_CERT":             server.Cert,
		"BASEC_TLS_KEY":              server.Key,
		"BASEC_TLS_CA":               server.CA,
		"BASEC_CLIENTS_READ":         "gateway," + tester,
		"BASEC_CLIENTS_ACCOUNTS":     "basec-admin," + tester,
		"BASEC_MONGODB_URI":          mongoURI,
		"BASEC_MONGODB_DATABASE":     db.Name(),
		"BASEC_AMQP_URL":             amqpURL,
		"BASEC_AMQP_EXCHANGE":        c.exchange,
		"BASEC_AMQP_DATA_QUEUE":      c.queue,
		"BASEC_BOOTSTRAP_USER":       adminUser,
		"BASEC_BOOTSTRAP_PASSWORD":   adminPass,
		"BASEC_BOOTSTRAP_ADMIN":      "true",
		"BASEC_SOURCE_FAILURE_LIMIT": "1000",
		// The tests speak for partners as the gateway does (x-partner-id).
		"BASEC_CLIENTS_TRUSTED": "gateway," + tester,
		// The tests (and the replicas) publish as the test broker's administrator.
		"BASEC_AMQP_PRODUCERS": "cpf.queried=" + admin + ";card.purchase.recorded=" + admin + ";financial.movement.recorded=" + admin +
			";basec.cache.invalidated=" + admin + ";basec.credential.invalidated=" + admin + ";basec.credential.failed=" + admin,
	}
	mq, err := amqp.Dial(testenv.Context(t), amqp.Config{URL: amqpURL, Exchange: c.exchange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mq.Close() })
	c.mq = mq
	c.pub = amqp.NewPublisher(mq, amqp.PublisherOptions{})
	return c
}

// start runs one replica in this process and returns a client for it.
func (c *cluster) start(id string) basecClient {
	t := c.t
	t.Helper()
	env := map[string]string{"BASEC_REPLICA_ID": id}
	for k, v := range c.env {
		env[k] = v
	}
	ctx := testenv.Context(t)
	cfg, err := app.Load(ctx, config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	name := "replica " + id
	srv := testenv.Serve(t, name, func(ctx context.Context, glis, hlis net.Listener) error {
		return app.Serve(ctx, cfg, logging.Discard(), glis, hlis)
	})
	conn := c.ca.Dial(srv.Addr, tester, "base-c")
	srv.WaitServing(t, name, conn)
	return basecClient{addr: srv.Addr, conn: conn, act: basecv1.NewActivityServiceClient(conn), acc: basecv1.NewAccountServiceClient(conn)}
}

type basecClient struct {
	addr string
	conn *grpc.ClientConn
	act  basecv1.ActivityServiceClient
	acc  basecv1.AccountServiceClient
}

func as(ctx context.Context, user, pass string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization",
		"Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
}

func (c *cluster) publish(typ, id string, m proto.Message) {
	c.t.Helper()
	body, err := proto.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.pub.Publish(testenv.Context(c.t), amqp.Message{ID: id, Type: typ, Body: body}); err != nil {
		c.t.Fatal(err)
	}
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func newCPF(n int) string { return string(cpf.Complete(fmt.Sprintf("%09d", 100000000+n))) }

func movement(c string, cents int64, at time.Time) *eventsv1.FinancialMovementRecorded {
	return &eventsv1.FinancialMovementRecorded{Cpf: c, MovementId: uuid.NewString(), AmountCents: cents, Currency: "BRL",
		Direction: "credit", Description: "pix", OccurredAt: timestamppb.New(at)}
}

func TestReplicasAgreeAfterAnEvent(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	r1, r2 := c.start("r1"), c.start("r2")
	ctx := as(testenv.Context(t), adminUser, adminPass)
	person := newCPF(1)

	c.publish(eventtypes.FinancialMovementRecorded, uuid.NewString(), movement(person, 1500, time.Now().Add(-time.Hour)))
	// Both replicas load the CPF into their caches.
	for _, r := range []basecClient{r1, r2} {
		eventually(t, 10*time.Second, func() error {
			resp, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person})
			if err != nil {
				return err
			}
			if n := len(resp.GetActivity().GetMovements()); n != 1 {
				return fmt.Errorf("%d movements", n)
			}
			return nil
		})
	}
	// A purchase arrives; whichever replica applies it, both must show it.
	c.publish(eventtypes.CardPurchaseRecorded, uuid.NewString(), &eventsv1.CardPurchaseRecorded{
		Cpf: person, AmountCents: 25990, Currency: "BRL", Merchant: "Loja X", Installments: 3, OccurredAt: timestamppb.Now()})
	start := time.Now()
	for _, r := range []basecClient{r1, r2} {
		eventually(t, 5*time.Second, func() error {
			resp, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person})
			if err != nil {
				return err
			}
			if resp.GetActivity().GetLastPurchase().GetMerchant() != "Loja X" {
				return errors.New("purchase not visible yet")
			}
			return nil
		})
	}
	t.Logf("both replicas show the purchase %s after publishing", time.Since(start).Round(time.Millisecond))

	// A lookup elsewhere (cpf.queried) is patched into both caches in place.
	c.publish(eventtypes.CPFQueried, uuid.NewString(), &eventsv1.CpfQueried{Cpf: person, PartnerId: "bank-z",
		ClientIp: "198.51.100.9", Base: "base-b", QueriedAt: timestamppb.Now()})
	for _, r := range []basecClient{r1, r2} {
		eventually(t, 5*time.Second, func() error {
			resp, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person})
			if err != nil {
				return err
			}
			a := resp.GetActivity()
			if a.GetLastQuery().GetPartnerId() != "bank-z" || a.GetLastPurchase().GetMerchant() != "Loja X" || len(a.GetMovements()) != 1 {
				return fmt.Errorf("last query not visible: %v", a)
			}
			return nil
		})
	}

	// Punctuated CPFs are accepted; invalid ones are refused with InvalidArgument.
	if _, err := r1.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: cpf.CPF(person).Formatted()}); err != nil {
		t.Fatalf("formatted CPF refused: %v", err)
	}
	_, err := r1.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: "123.456.789-00"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("invalid CPF: want InvalidArgument, got %v", err)
	}
	_, err = r1.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: newCPF(999)})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown CPF: want NotFound, got %v", err)
	}
}

func TestMovementsPaginateWithoutGapsOrDuplicates(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	r := c.start("r1")
	ctx := as(testenv.Context(t), adminUser, adminPass)
	person := newCPF(2)
	base := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	const n = 25
	for i := range n {
		// Two movements share each timestamp, so the cursor must break ties.
		c.publish(eventtypes.FinancialMovementRecorded, uuid.NewString(), movement(person, int64(100+i), base.Add(time.Duration(i/2)*time.Minute)))
	}
	eventually(t, 10*time.Second, func() error {
		resp, err := r.act.ListMovements(ctx, &basecv1.ListMovementsRequest{Cpf: person, Limit: 100})
		if err != nil {
			return err
		}
		if len(resp.GetMovements()) != n {
			return fmt.Errorf("%d of %d movements", len(resp.GetMovements()), n)
		}
		return nil
	})
	seen := map[string]bool{}
	token := ""
	var last time.Time
	pages := 0
	for {
		resp, err := r.act.ListMovements(ctx, &basecv1.ListMovementsRequest{Cpf: person, Limit: 4, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range resp.GetMovements() {
			if seen[m.GetId()] {
				t.Fatalf("movement %s on two pages", m.GetId())
			}
			seen[m.GetId()] = true
			if at := m.GetOccurredAt().AsTime(); !last.IsZero() && at.After(last) {
				t.Fatalf("not newest first: %s after %s", at, last)
			}
			last = m.GetOccurredAt().AsTime()
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(seen) != n || pages != 7 {
		t.Fatalf("paged %d movements in %d pages, want %d in 7", len(seen), pages, n)
	}
	// A window: [base+2m, base+5m) holds movements 4..9.
	resp, err := r.act.ListMovements(ctx, &basecv1.ListMovementsRequest{Cpf: person,
		From: timestamppb.New(base.Add(2 * time.Minute)), To: timestamppb.New(base.Add(5 * time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetMovements()) != 6 {
		t.Fatalf("window holds %d movements, want 6", len(resp.GetMovements()))
	}
	// A token made for one CPF is refused for another; bad limits are refused.
	first, _ := r.act.ListMovements(ctx, &basecv1.ListMovementsRequest{Cpf: person, Limit: 1})
	_, err = r.act.ListMovements(ctx, &basecv1.ListMovementsRequest{Cpf: newCPF(3), PageToken: first.GetNextPageToken()})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("foreign page token: want InvalidArgument, got %v", err)
	}
	_, err = r.act.ListMovements(ctx, &basecv1.ListMovementsRequest{Cpf: person, Limit: 1000})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("limit 1000: want InvalidArgument, got %v", err)
	}
}

func code(err error) codes.Code { return status.Code(err) }

// authorised reports whether the call got past authentication (NotFound
// means it did: the CPF simply has no activity).
func authorised(err error) bool { return err == nil || code(err) == codes.NotFound }

func TestBasicAuthOnEveryReplica(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	r1, r2 := c.start("r1"), c.start("r2")
	base := testenv.Context(t)
	admin := as(base, adminUser, adminPass)
	req := &basecv1.GetActivityRequest{Cpf: newCPF(4)}

	if _, err := r1.act.GetActivity(base, req); code(err) != codes.Unauthenticated {
		t.Fatalf("no credentials: want Unauthenticated, got %v", err)
	}
	bad := metadata.AppendToOutgoingContext(base, "authorization", "Basic !!!")
	if _, err := r1.act.GetActivity(bad, req); code(err) != codes.Unauthenticated {
		t.Fatalf("malformed credentials: want Unauthenticated, got %v", err)
	}

	const user, pw1, pw2 = "bank-one", "first-password-1", "second-password-2"
	if _, err := r1.acc.CreateAccount(admin, &basecv1.CreateAccountRequest{Username: user, Password: pw1}); err != nil {
		t.Fatal(err)
	}
	if _, err := r1.acc.CreateAccount(admin, &basecv1.CreateAccountRequest{Username: "short", Password: "x"}); code(err) != codes.InvalidArgument {
		t.Fatalf("short password: want InvalidArgument, got %v", err)
	}
	if _, err := r2.acc.CreateAccount(as(base, user, pw1), &basecv1.CreateAccountRequest{Username: "x", Password: "long-enough-pass"}); code(err) != codes.PermissionDenied {
		t.Fatalf("non-admin managing accounts: want PermissionDenied, got %v", err)
	}
	for i, r := range []basecClient{r1, r2} {
		if _, err := r.act.GetActivity(as(base, user, pw1), req); !authorised(err) {
			t.Fatalf("replica %d refused the right password: %v", i+1, err)
		}
		if _, err := r.act.GetActivity(as(base, user, "wrong-password!"), req); code(err) != codes.Unauthenticated {
			t.Fatalf("replica %d: wrong password: want Unauthenticated, got %v", i+1, err)
		}
	}

	// refusedEverywhere waits until both replicas refuse user's password pw
	// (what names it in the failure). It asks from a client address of its
	// own each time: the refusals count against the address that fails, on
	// every replica, and would otherwise throttle this test's own calls.
	probes := 0
	refusedEverywhere := func(pw, what string) {
		t.Helper()
		probes++
		probe := from(base, "prober", fmt.Sprintf("192.0.2.%d", probes))
		for i, r := range []basecClient{r1, r2} {
			eventually(t, 3*time.Second, func() error {
				if _, err := r.act.GetActivity(as(probe, user, pw), req); code(err) != codes.Unauthenticated {
					return fmt.Errorf("replica %d still accepts %s: %v", i+1, what, err)
				}
				return nil
			})
		}
	}

	// Rotation on replica 1: replica 2 had the old password cached and must
	// refuse it as soon as the invalidation arrives.
	if _, err := r1.acc.RotatePassword(admin, &basecv1.RotatePasswordRequest{Username: user, NewPassword: pw2}); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere(pw1, "the rotated password")
	for i, r := range []basecClient{r1, r2} {
		if _, err := r.act.GetActivity(as(base, user, pw2), req); !authorised(err) {
			t.Fatalf("replica %d refused the new password: %v", i+1, err)
		}
	}

	// Disabling on replica 2 stops the account everywhere.
	if _, err := r2.acc.DisableAccount(admin, &basecv1.DisableAccountRequest{Username: user}); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere(pw2, "a disabled account")

	// No third-party lockout: another partner's wrong passwords, from the
	// same address, slow down only that partner; the account's own partner
	// keeps reading on both replicas, cached or not (the issue's attack:
	// five guesses used to lock the owner out).
	const victim, vpw = "bank-two", "victim-password-1"
	if _, err := r1.acc.CreateAccount(admin, &basecv1.CreateAccountRequest{Username: victim, Password: vpw}); err != nil {
		t.Fatal(err)
	}
	owner := from(base, "bank-two", "203.0.113.7")
	hostile := from(base, "bank-evil", "203.0.113.7")
	if _, err := r2.act.GetActivity(as(owner, victim, vpw), req); !authorised(err) {
		t.Fatalf("victim's password refused before the attack: %v", err)
	}
	throttled := 0
	for range 12 {
		switch _, err := r1.act.GetActivity(as(hostile, victim, "guess-guess-guess"), req); code(err) {
		case codes.ResourceExhausted:
			throttled++
		case codes.Unauthenticated:
		default:
			t.Fatalf("wrong guess: %v", err)
		}
	}
	if throttled == 0 {
		t.Fatal("twelve wrong guesses in a row were never throttled")
	}
	for i, r := range []basecClient{r1, r2} {
		if _, err := r.act.GetActivity(as(owner, victim, vpw), req); !authorised(err) {
			t.Fatalf("replica %d: the owner was locked out by another partner's guesses: %v", i+1, err)
		}
	}
}

// from is a call the gateway makes for partner at client address ip.
func from(ctx context.Context, partner, ip string) context.Context {
	return origin.Outgoing(ctx, origin.Origin{PartnerID: partner, ClientIP: ip})
}

func TestPoisonMessageGoesToTheDeadLetterQueue(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	c.start("r1")
	ctx := testenv.Context(t)
	if err := c.pub.Publish(ctx, amqp.Message{ID: "poison-1", Type: eventtypes.CardPurchaseRecorded, Body: []byte{0xff, 0x01, 0x02}}); err != nil {
		t.Fatal(err)
	}
	invalid, _ := proto.Marshal(&eventsv1.CardPurchaseRecorded{Cpf: "111.111.111-11", AmountCents: 1, Currency: "BRL", Merchant: "m", Installments: 1, OccurredAt: timestamppb.Now()})
	if err := c.pub.Publish(ctx, amqp.Message{ID: "poison-2", Type: eventtypes.CardPurchaseRecorded, Body: invalid}); err != nil {
		t.Fatal(err)
	}
	ch, err := c.mq.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	got := map[string]bool{}
	eventually(t, 10*time.Second, func() error {
		msg, ok, err := ch.Get(c.queue+".dlq", true)
		if err != nil {
			return err
		}
		if ok {
			got[msg.MessageId] = true
		}
		if !got["poison-1"] || !got["poison-2"] {
			return fmt.Errorf("dead-lettered so far: %v", got)
		}
		return nil
	})
}

func TestStaleAnswersWhileMongoIsDownAndNoWriteLost(t *testing.T) {
	t.Parallel()
	mongoURI := testenv.MongoURI(t)
	u, err := url.Parse(mongoURI)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	c := newCluster(t, testenv.ProxyURL(mongoURI, u.Host, proxy.Addr()))
	r := c.start("r1")
	ctx := as(testenv.Context(t), adminUser, adminPass)
	person := newCPF(5)
	c.publish(eventtypes.FinancialMovementRecorded, uuid.NewString(), movement(person, 700, time.Now().Add(-time.Minute)))
	eventually(t, 10*time.Second, func() error {
		_, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person})
		return err
	})

	proxy.Disable()
	eventually(t, 20*time.Second, func() error {
		resp, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person})
		if err != nil {
			return err
		}
		if !resp.GetStale() {
			return errors.New("answer not marked stale yet")
		}
		if len(resp.GetActivity().GetMovements()) != 1 {
			return errors.New("stale answer lost the cached data")
		}
		return nil
	})
	// An uncached CPF cannot be answered: Unavailable, not a crash or a 500.
	if _, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: newCPF(6)}); code(err) != codes.Unavailable {
		t.Fatalf("uncached CPF during outage: want Unavailable, got %v", err)
	}
	// A write during the outage is held, then applied when Mongo returns.
	c.publish(eventtypes.FinancialMovementRecorded, uuid.NewString(), movement(person, 800, time.Now()))
	time.Sleep(500 * time.Millisecond)
	proxy.Enable(t)
	eventually(t, 30*time.Second, func() error {
		resp, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person})
		if err != nil {
			return err
		}
		if resp.GetStale() || len(resp.GetActivity().GetMovements()) != 2 {
			return fmt.Errorf("stale=%v movements=%d", resp.GetStale(), len(resp.GetActivity().GetMovements()))
		}
		return nil
	})
}

// A guesser spreading wrong passwords over the replicas gets no more tries
// than against one: each replica counts the failures the others saw
// (basec.credential.failed), and its own broadcasts only once.
func TestWrongPasswordsSpreadOverReplicasAreThrottledAsOnOne(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	c.env["BASEC_THROTTLE_BASE"] = "30s" // the throttle outlasts any broker lag
	r1, r2 := c.start("r1"), c.start("r2")
	base := testenv.Context(t)
	admin := as(base, adminUser, adminPass)
	for _, u := range []string{"bank-four", "bank-five"} {
		if _, err := r1.acc.CreateAccount(admin, &basecv1.CreateAccountRequest{Username: u, Password: "the-right-password-1"}); err != nil {
			t.Fatal(err)
		}
	}
	hostile := from(base, "bank-evil", "203.0.113.9")
	req := &basecv1.GetActivityRequest{Cpf: newCPF(7)}
	guess := func(r basecClient, user string, i int) codes.Code {
		_, err := r.act.GetActivity(as(hostile, user, fmt.Sprintf("wrong-guess-%d", i)), req)
		return code(err)
	}
	// Three free failures on one replica, then the fourth: not throttled
	// (its own broadcasts are not counted twice), and throttled after.
	for i := range 4 {
		if got := guess(r1, "bank-four", i); got != codes.Unauthenticated {
			t.Fatalf("bank-four guess %d on r1: %v, want Unauthenticated", i+1, got)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got := guess(r1, "bank-four", 5); got != codes.ResourceExhausted {
		t.Fatalf("bank-four's fifth guess: %v, want ResourceExhausted", got)
	}
	// Four failures spread over both replicas: the fifth is throttled on
	// either, though neither saw more than two itself.
	for i := range 4 {
		if got := guess([]basecClient{r1, r2}[i%2], "bank-five", i); got != codes.Unauthenticated {
			t.Fatalf("bank-five guess %d: %v, want Unauthenticated", i+1, got)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for i, r := range []basecClient{r1, r2} {
		if got := guess(r, "bank-five", 10+i); got != codes.ResourceExhausted {
			t.Fatalf("replica %d let a fifth guess spread over replicas through: %v, want ResourceExhausted", i+1, got)
		}
	}
	// The owner is not locked out by any of it.
	owner := from(base, "bank-five", "198.51.100.1")
	if _, err := r2.act.GetActivity(as(owner, "bank-five", "the-right-password-1"), req); !authorised(err) {
		t.Fatalf("the owner was locked out: %v", err)
	}
}
