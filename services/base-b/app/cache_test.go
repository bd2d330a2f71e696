package app_test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/proto/eventtypes"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
)

// metric sums the samples of name whose labels contain every one of
// labels, from the replica's /metrics.
func (r replica) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.opsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// waitFor reads through get until ok, failing after 10 seconds.
func waitFor[T any](t *testing.T, what string, get func() (T, error), ok func(T) bool) {
	t.Helper()
	var v T
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v, err = get(); err == nil && ok(v) {
			return
		}
	}
	t.Fatalf("%s: never seen (last %v, %v)", what, v, err)
}

// A write through replica 1 is seen by a read on replica 2, which had
// cached the profile before the write: replica 1 broadcasts the change.
func TestWriteOnOneReplicaIsSeenOnTheOther(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	r1, r2, person := c.startPair(10)
	read := c.as("base-b:read")
	get := func() (*basebv1.GetProfileResponse, error) {
		return r2.client.GetProfile(read, &basebv1.GetProfileRequest{Cpf: person})
	}
	waitFor(t, "seeded profile on replica 2", get, func(p *basebv1.GetProfileResponse) bool { return len(p.GetProfile().GetAssets()) == 1 })
	// Cached on replica 2 now, once the seed writes' invalidations have
	// all arrived (the last can land after the read above cached the
	// profile): then 20 reads send no find.
	for attempt := 1; ; attempt++ {
		finds := r2.metric(t, "strata_mongo_commands_total", `command="find"`)
		for range 20 {
			if _, err := get(); err != nil {
				t.Fatal(err)
			}
		}
		n := r2.metric(t, "strata_mongo_commands_total", `command="find"`) - finds
		if n == 0 {
			break
		}
		if attempt == 5 {
			t.Fatalf("replica 2 sent %v finds for 20 cached reads (attempt %d)", n, attempt)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := r1.client.UpsertProfile(c.as("base-b:write"), &basebv1.UpsertProfileRequest{Cpf: person, BirthDate: "1985-03-15",
		Address: &basebv1.Address{Street: "Rua B", Number: "2", City: "Olinda", State: "PE", PostalCode: "53000000"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new address on replica 2", get, func(p *basebv1.GetProfileResponse) bool { return p.GetProfile().GetAddress().GetCity() == "Olinda" })
	if _, err := r1.client.AddAsset(c.as("base-b:write"), &basebv1.AddAssetRequest{Cpf: person, Asset: &basebv1.Asset{
		Kind: basebv1.AssetKind_ASSET_KIND_REAL_ESTATE, Description: "flat", ValueCents: 30_000_000, Currency: "BRL"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new asset's score on replica 2", func() (*basebv1.GetScoreResponse, error) {
		return r2.client.GetScore(read, &basebv1.GetScoreRequest{Cpf: person})
	}, func(s *basebv1.GetScoreResponse) bool { return s.GetScore().GetScore() == 900 }) // assets R$ 360,000: +150 (the cap), was +60
}

// A debt.summary.changed reaches the score on every replica, whichever
// applied it, though both had the profile cached.
func TestDebtSummaryInvalidatesEveryReplica(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	r1, r2, person := c.startPair(11)
	read := c.as("base-b:read")
	for _, r := range []replica{r1, r2} {
		waitFor(t, "seeded score", func() (*basebv1.GetScoreResponse, error) {
			return r.client.GetScore(read, &basebv1.GetScoreRequest{Cpf: person})
		}, func(s *basebv1.GetScoreResponse) bool { return s.GetScore().GetScore() == 810 })
	}
	ctx := testenv.Context(t)
	mq, err := amqp.Dial(ctx, amqp.Config{URL: c.env["BASEB_AMQP_URL"], Exchange: c.env["BASEB_AMQP_EXCHANGE"]})
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	body, _ := proto.Marshal(&eventsv1.DebtSummaryChanged{Cpf: person, OpenCount: 2, OpenAmountCents: 1_680_000, Currency: "BRL",
		AsOf: timestamppb.Now(), Version: 1})
	if err := amqp.NewPublisher(mq, amqp.PublisherOptions{}).Publish(ctx, amqp.Message{ID: "d1", Type: eventtypes.DebtSummaryChanged, Body: body}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []replica{r1, r2} {
		// 810 before; two open debts -80; load -40.
		waitFor(t, "score after the debt summary", func() (*basebv1.GetScoreResponse, error) {
			return r.client.GetScore(read, &basebv1.GetScoreRequest{Cpf: person})
		}, func(s *basebv1.GetScoreResponse) bool { return s.GetScore().GetScore() == 690 })
	}
}

// In steady state a read is answered from the cache: 1,000 profile and
// score reads after a warm-up send no find to the store (counted by the
// driver's command monitor, strata_mongo_commands_total); the OAuth2
// check still runs on every call.
func TestSteadyStateReadsNeverHitTheStore(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	r, person := c.startSeeded(12)
	read := c.as("base-b:read")
	if _, err := r.client.GetProfile(read, &basebv1.GetProfileRequest{Cpf: person}); err != nil {
		t.Fatal(err)
	}
	finds := r.metric(t, "strata_mongo_commands_total", `command="find"`)
	hits := r.metric(t, "strata_baseb_cache_lookups_total", `result="hit"`)
	for i := range 1000 {
		var err error
		if i%2 == 0 {
			_, err = r.client.GetProfile(read, &basebv1.GetProfileRequest{Cpf: person})
		} else {
			_, err = r.client.GetScore(read, &basebv1.GetScoreRequest{Cpf: person})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := r.metric(t, "strata_mongo_commands_total", `command="find"`) - finds; n != 0 {
		t.Fatalf("%v finds for 1,000 reads in steady state", n)
	}
	if n := r.metric(t, "strata_baseb_cache_lookups_total", `result="hit"`) - hits; n != 1000 {
		t.Fatalf("%v cache hits for 1,000 reads", n)
	}
	// A token without the read scope is still refused: the cache is
	// behind the OAuth2 check.
	if _, err := r.client.GetProfile(c.as("base-b:write"), &basebv1.GetProfileRequest{Cpf: person}); err == nil {
		t.Fatal("a cached profile was served to a token without base-b:read")
	}
}
