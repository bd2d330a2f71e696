package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.mongodb.org/mongo-driver/v2/bson"
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
	"github.com/strata-bureau/strata/pkg/pki"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/proto/eventtypes"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-b/app"
	"github.com/strata-bureau/strata/services/base-b/internal/oidctest"
)

const audience = "strata-base-b"

type cluster struct {
	t      testing.TB
	db     *mongo.Database
	issuer *oidctest.Issuer
	env    map[string]string
	ca     *testenv.CA
	// replicas started so far (each gets its own REPLICA_ID).
	replicas int
}

// tester is the identity the tests call with: allowed in every method
// group (TestMutualTLS checks the real groups with the real identities).
const tester = "baseb-test"

func newCluster(t testing.TB) *cluster {
	t.Helper()
	_, db := testenv.MongoDB(t)
	is := oidctest.New(t, jose.RS256)
	c := &cluster{t: t, db: db, issuer: is, ca: testenv.NewCA(t)}
	server := c.issue("base-b", "base-b", "127.0.0.1")
	c.env = map[string]string{
		"BASEB_TLS_CERT":       server.Cert,
		"BASEB_TLS_KEY":        server.Key,
		"BASEB_TLS_CA":         server.CA,
		"BASEB_CLIENTS_READ":   "gateway," + tester,
		"BASEB_CLIENTS_EXPORT": "baseb-export," + tester,
		"BASEB_CLIENTS_WRITE":  "baseb-loader," + tester,
	}
	for k, v := range map[string]string{
		"BASEB_MONGODB_URI":      testenv.MongoURI(t),
		"BASEB_MONGODB_DATABASE": db.Name(),
		"BASEB_AMQP_URL":         testenv.AMQPURL(t),
		"BASEB_AMQP_EXCHANGE":    testenv.UniqueName(t, "x"),
		"BASEB_AMQP_QUEUE":       testenv.UniqueName(t, "q"),
		"BASEB_OIDC_ISSUER":      is.URL,
		"BASEB_OIDC_AUDIENCE":    audience,
		// The tests publish as the test broker's administrator.
		"BASEB_AMQP_PRODUCERS": producers(brokerUser(testenv.AMQPURL(t))),
	} {
		c.env[k] = v
	}
	return c
}

func (c *cluster) issue(identity string, hosts ...string) pki.Files {
	return c.ca.Issue(identity, hosts...)
}

// dial connects to addr over mTLS as identity.
func (c *cluster) dial(addr, identity string) *grpc.ClientConn {
	return c.ca.Dial(addr, identity, "base-b")
}

// producers is BASEB_AMQP_PRODUCERS with user owning both event types.
func producers(user string) string {
	return "debt.summary.changed=" + user + ";baseb.cache.invalidated=" + user
}

type replica struct {
	client  basebv1.ProfileServiceClient
	addr    string
	opsAddr string
	stop    func()
}

func (c *cluster) start() replica {
	t := c.t
	t.Helper()
	ctx := testenv.Context(t)
	c.replicas++
	env := map[string]string{"BASEB_REPLICA_ID": fmt.Sprintf("r%d", c.replicas)}
	for k, v := range c.env {
		env[k] = v
	}
	cfg, err := app.Load(ctx, config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.Serve(t, "base-b", func(ctx context.Context, glis, hlis net.Listener) error {
		return app.Serve(ctx, cfg, logging.Discard(), glis, hlis)
	})
	conn := c.dial(srv.Addr, tester)
	srv.WaitServing(t, "base-b", conn)
	return replica{client: basebv1.NewProfileServiceClient(conn), addr: srv.Addr, opsAddr: srv.OpsAddr, stop: srv.Stop}
}

func (c *cluster) as(scopes string) context.Context {
	tok := c.issuer.Token(c.t, oidctest.Claims{Subject: "bank-a", Audience: audience, Scope: scopes})
	return metadata.AppendToOutgoingContext(testenv.Context(c.t), "authorization", "Bearer "+tok)
}

func brokerUser(raw string) string {
	u, _ := url.Parse(raw)
	return u.User.Username()
}

func newCPF(n int) string { return string(cpf.Complete(fmt.Sprintf("%09d", 200000000+n))) }

// startSeeded starts a replica and seeds the profile of newCPF(n) through it.
func (c *cluster) startSeeded(n int) (replica, string) {
	c.t.Helper()
	r := c.start()
	person := newCPF(n)
	c.seedProfile(r, person)
	return r, person
}

// startPair starts two replicas and seeds the profile of newCPF(n)
// through the first.
func (c *cluster) startPair(n int) (r1, r2 replica, person string) {
	c.t.Helper()
	r1, r2 = c.start(), c.start()
	person = newCPF(n)
	c.seedProfile(r1, person)
	return r1, r2, person
}

func (c *cluster) seedProfile(r replica, person string) {
	c.t.Helper()
	ctx := c.as("base-b:write")
	if _, err := r.client.UpsertProfile(ctx, &basebv1.UpsertProfileRequest{Cpf: person, BirthDate: "1985-03-15",
		Address: &basebv1.Address{Street: "Rua A", Number: "1", City: "Recife", State: "PE", PostalCode: "50000000"}}); err != nil {
		c.t.Fatal(err)
	}
	if _, err := r.client.AddIncomeSource(ctx, &basebv1.AddIncomeSourceRequest{Cpf: person, IncomeSource: &basebv1.IncomeSource{
		Kind: basebv1.IncomeKind_INCOME_KIND_SALARY, MonthlyAmountCents: 700_000, Currency: "BRL", Since: "2020-01-01"}}); err != nil {
		c.t.Fatal(err)
	}
	if _, err := r.client.AddAsset(ctx, &basebv1.AddAssetRequest{Cpf: person, Asset: &basebv1.Asset{
		Kind: basebv1.AssetKind_ASSET_KIND_VEHICLE, Description: "car", ValueCents: 6_000_000, Currency: "BRL"}}); err != nil {
		c.t.Fatal(err)
	}
}

func TestReplicasAnswerIdenticallyAndSurviveAStop(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	r1, r2, person := c.startPair(1)
	read := c.as("base-b:read")
	p1, err := r1.client.GetProfile(read, &basebv1.GetProfileRequest{Cpf: person})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := r2.client.GetProfile(read, &basebv1.GetProfileRequest{Cpf: cpf.CPF(person).Formatted()})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(p1, p2) {
		t.Fatalf("replicas disagree:\n%v\n%v", p1, p2)
	}
	s1, _ := r1.client.GetScore(read, &basebv1.GetScoreRequest{Cpf: person})
	s2, _ := r2.client.GetScore(read, &basebv1.GetScoreRequest{Cpf: person})
	if !proto.Equal(s1, s2) || s1.GetScore().GetModelVersion() == "" {
		t.Fatalf("scores disagree: %v / %v", s1, s2)
	}
	// Income 7,000 (+200), assets 60,000 (+60), age 41 (+50): 810, high.
	if s1.GetScore().GetScore() != 810 || s1.GetScore().GetBand() != basebv1.Band_BAND_HIGH {
		t.Fatalf("score %v", s1.GetScore())
	}
	r1.stop()
	if p, err := r2.client.GetProfile(read, &basebv1.GetProfileRequest{Cpf: person}); err != nil || !proto.Equal(p, p1) {
		t.Fatalf("after stopping replica 1: %v %v", p, err)
	}
	if _, err := r2.client.AddAsset(c.as("base-b:write"), &basebv1.AddAssetRequest{Cpf: person, Asset: &basebv1.Asset{
		Kind: basebv1.AssetKind_ASSET_KIND_REAL_ESTATE, Description: "flat", ValueCents: 30_000_000, Currency: "BRL"}}); err != nil {
		t.Fatal(err)
	}
	// Who read it, when and from where is kept in last_access (keyed by
	// CPF, apart from the profile): written in the background, one bulk
	// write a second.
	var doc struct {
		LastAccess struct {
			Who, ClientIP, What string
			At                  time.Time
		} `bson:"last_access"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.db.Collection("last_access").FindOne(testenv.Context(t), bson.M{"_id": person}).Decode(&doc)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			t.Fatal(err)
		}
		la := doc.LastAccess
		if la.Who == "bank-a" && !la.At.IsZero() && la.What != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last_access not recorded: %+v", la)
		}
		if _, err := r2.client.GetProfile(read, &basebv1.GetProfileRequest{Cpf: person}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestScopesAndTokensAreEnforced(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	r, person := c.startSeeded(2)
	base := testenv.Context(t)
	if _, err := r.client.GetProfile(base, &basebv1.GetProfileRequest{Cpf: person}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	bad := metadata.AppendToOutgoingContext(base, "authorization", "Bearer x.y.z")
	if _, err := r.client.GetProfile(bad, &basebv1.GetProfileRequest{Cpf: person}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := r.client.AddAsset(c.as("base-b:read"), &basebv1.AddAssetRequest{Cpf: person}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("read scope writing: %v", err)
	}
	if _, err := r.client.GetProfile(c.as("base-b:write"), &basebv1.GetProfileRequest{Cpf: person}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("write scope reading: %v", err)
	}
	st, err := r.client.ExportFeatures(c.as("base-b:read"), &basebv1.ExportFeaturesRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("read scope exporting: %v", err)
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"invalid CPF", func() error {
			_, err := r.client.GetProfile(c.as("base-b:read"), &basebv1.GetProfileRequest{Cpf: "111.111.111-11"})
			return err
		}()},
		{"future birth date", func() error {
			_, err := r.client.UpsertProfile(c.as("base-b:write"), &basebv1.UpsertProfileRequest{Cpf: person, BirthDate: "2999-01-01"})
			return err
		}()},
		{"negative asset", func() error {
			_, err := r.client.AddAsset(c.as("base-b:write"), &basebv1.AddAssetRequest{Cpf: person, Asset: &basebv1.Asset{Kind: basebv1.AssetKind_ASSET_KIND_OTHER, ValueCents: -5, Currency: "BRL"}})
			return err
		}()},
	} {
		if status.Code(tc.err) != codes.InvalidArgument {
			t.Errorf("%s: want InvalidArgument, got %v", tc.name, tc.err)
		}
	}
	if _, err := r.client.GetProfile(c.as("base-b:read"), &basebv1.GetProfileRequest{Cpf: newCPF(999)}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown CPF: %v", err)
	}
}

func TestExportResumesWithoutGapsOrDuplicates(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	r := c.start()
	const n = 23
	coll := c.db.Collection("profiles")
	for i := range n {
		if _, err := coll.InsertOne(testenv.Context(t), bson.M{"_id": newCPF(100 + i), "birth_date": "1990-01-01",
			"assets": bson.A{}, "income_sources": bson.A{}, "updated_at": time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	export := func(cursor string, stopAfter int) ([]string, string) {
		ctx, cancel := context.WithCancel(c.as("base-b:export"))
		defer cancel()
		st, err := r.client.ExportFeatures(ctx, &basebv1.ExportFeaturesRequest{Cursor: cursor, BatchSize: 4})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		last := cursor
		for len(got) < stopAfter {
			row, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, row.GetCpf())
			last = row.GetCursor()
		}
		return got, last
	}
	first, cur := export("", 10) // interrupted after 10 rows
	rest, _ := export(cur, 1000)
	all := append(first, rest...)
	seen := map[string]bool{}
	for i, c := range all {
		if seen[c] {
			t.Fatalf("duplicate %s", c)
		}
		seen[c] = true
		if i > 0 && all[i-1] >= c {
			t.Fatalf("not in order at %d", i)
		}
	}
	if len(all) != n {
		t.Fatalf("exported %d of %d profiles (first run %d, resumed %d)", len(all), n, len(first), len(rest))
	}
}

func TestDebtSummaryEventsReachTheScore(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	r, person := c.startSeeded(3)
	ctx := testenv.Context(t)
	mq, err := amqp.Dial(ctx, amqp.Config{URL: c.env["BASEB_AMQP_URL"], Exchange: c.env["BASEB_AMQP_EXCHANGE"]})
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	pub := amqp.NewPublisher(mq, amqp.PublisherOptions{})
	send := func(id string, version int64, open int32, amount int64) {
		body, _ := proto.Marshal(&eventsv1.DebtSummaryChanged{Cpf: person, OpenCount: open, OpenAmountCents: amount, Currency: "BRL",
			AsOf: timestamppb.Now(), Version: version})
		if err := pub.Publish(ctx, amqp.Message{ID: id, Type: eventtypes.DebtSummaryChanged, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	send("m2", 2, 2, 1_680_000)
	send("m2", 2, 2, 1_680_000)  // duplicate delivery
	send("m1", 1, 9, 99_000_000) // an older version arriving late
	var got *basebv1.GetProfileResponse
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got, err = r.client.GetProfile(c.as("base-b:read"), &basebv1.GetProfileRequest{Cpf: person})
		if err == nil && got.GetProfile().GetDebtSummary().GetOpenCount() == 2 {
			break
		}
	}
	time.Sleep(300 * time.Millisecond) // let the late, older event arrive too
	got, _ = r.client.GetProfile(c.as("base-b:read"), &basebv1.GetProfileRequest{Cpf: person})
	if d := got.GetProfile().GetDebtSummary(); d.GetOpenCount() != 2 || d.GetOpenAmountCents() != 1_680_000 {
		t.Fatalf("debt summary %v", d)
	}
	s, err := r.client.GetScore(c.as("base-b:read"), &basebv1.GetScoreRequest{Cpf: person})
	if err != nil {
		t.Fatal(err)
	}
	// 810 before; two open debts -80; load 1,680,000×200/(12×700,000) = -40.
	if s.GetScore().GetScore() != 690 || s.GetScore().GetReasons()[0].GetCode() != "R02" {
		t.Fatalf("score after debts: %v", s.GetScore())
	}
}

// A debt.summary.changed from anyone but its owner (Base A's broker user)
// is dead-lettered and never applied, however high its version: it could
// otherwise pin a CPF's score forever.
func TestDebtSummaryFromAnotherProducerIsDeadLettered(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	names := "^(" + regexp.QuoteMeta(c.env["BASEB_AMQP_EXCHANGE"]) + `|strata\.dlx)$`
	owner := testenv.BrokerUser(t, "base-a", testenv.BrokerPerms{Configure: names, Write: names, Read: `^$`,
		Exchange: c.env["BASEB_AMQP_EXCHANGE"], TopicWrite: `^debt\.summary\.changed$`, TopicRead: `^$`})
	c.env["BASEB_AMQP_PRODUCERS"] = "debt.summary.changed=" + brokerUser(owner) + ";baseb.cache.invalidated=" + brokerUser(testenv.AMQPURL(t))
	r, person := c.startSeeded(4)
	ctx := testenv.Context(t)
	publish := func(from, id string, version int64, open int32) {
		mq, err := amqp.Dial(ctx, amqp.Config{URL: from, Exchange: c.env["BASEB_AMQP_EXCHANGE"]})
		if err != nil {
			t.Fatal(err)
		}
		defer mq.Close()
		body, _ := proto.Marshal(&eventsv1.DebtSummaryChanged{Cpf: person, OpenCount: open, OpenAmountCents: 1000, Currency: "BRL",
			AsOf: timestamppb.Now(), Version: version})
		if err := amqp.NewPublisher(mq, amqp.PublisherOptions{}).Publish(ctx, amqp.Message{ID: id, Type: eventtypes.DebtSummaryChanged, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	// Someone the broker lets route the key (here its administrator) forges
	// a summary with a huge version; then the owner publishes a real one.
	publish(c.env["BASEB_AMQP_URL"], "forged", 1<<60, 99)
	publish(owner, "real", 1, 1)
	var got *basebv1.GetProfileResponse
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got, err = r.client.GetProfile(c.as("base-b:read"), &basebv1.GetProfileRequest{Cpf: person})
		if err == nil && got.GetProfile().GetDebtSummary().GetOpenCount() != 0 {
			break
		}
	}
	if d := got.GetProfile().GetDebtSummary(); d.GetOpenCount() != 1 {
		t.Fatalf("debt summary %v: the owner's event must be applied, the forged one not", d)
	}
	mq, err := amqp.Dial(ctx, amqp.Config{URL: c.env["BASEB_AMQP_URL"], Exchange: c.env["BASEB_AMQP_EXCHANGE"]})
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	ch, err := mq.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	m, ok, err := ch.Get(c.env["BASEB_AMQP_QUEUE"]+".dlq", true)
	if err != nil || !ok || m.MessageId != "forged" {
		t.Fatalf("the forged event is not dead-lettered: ok=%v id=%q err=%v", ok, m.MessageId, err)
	}
}
