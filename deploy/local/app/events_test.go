package app_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
)

// eventProbe measures how long a lookup's cpf.queried event takes to show
// in Base C's answer: one lookup through the gateway, then Base C read
// directly over gRPC until the CPF's last query is at least as new as the
// lookup's start.
type eventProbe struct {
	lookup func(cpf string) error
	direct basecv1.ActivityServiceClient
	ctx    context.Context // carries Base C's Basic credentials
}

func newEventProbe(conn *grpc.ClientConn, basic string, lookup func(cpf string) error) eventProbe {
	return eventProbe{lookup: lookup, direct: basecv1.NewActivityServiceClient(conn),
		ctx: metadata.AppendToOutgoingContext(context.Background(), "authorization", basic)}
}

// lag looks cpf up and returns how long its event took to be visible, or
// limit if it was not visible by then.
func (p eventProbe) lag(cpf string, limit time.Duration) time.Duration {
	start := time.Now()
	_ = p.lookup(cpf) // a failed lookup shows as a lag of limit
	for time.Since(start) < limit {
		a, err := p.direct.GetActivity(p.ctx, &basecv1.GetActivityRequest{Cpf: cpf})
		if err == nil && !a.GetActivity().GetLastQuery().GetQueriedAt().AsTime().Before(start) {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return limit
}

// lags probes one CPF after another (from cpfOf) for d, 20 ms apart, and
// returns the lags sorted.
func (p eventProbe) lags(d time.Duration, cpfOf func(i int) string) []time.Duration {
	var out []time.Duration
	for i, stop := 0, time.Now().Add(d); time.Now().Before(stop); i++ {
		out = append(out, p.lag(cpfOf(i), 10*time.Second))
		time.Sleep(20 * time.Millisecond)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// pct is the q-quantile (0..1) of sorted samples, 0 if there are none.
func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*q)]
}

// lagSummary prints sorted lags as p50/p99/max over n probes.
func lagSummary(sorted []time.Duration) string {
	if len(sorted) == 0 {
		return "no probes"
	}
	return fmt.Sprintf("p50 %dms p99 %dms max %dms over %d probes", pct(sorted, 0.5).Milliseconds(),
		pct(sorted, 0.99).Milliseconds(), sorted[len(sorted)-1].Milliseconds(), len(sorted))
}

// eventThroughput is how fast the consumers applied the events of a
// closed-loop run: events produced (one per op) over the time from the
// run's start until a probe looked up after the run shows in Base C (so
// every event queued before it has been applied, to within one batch).
type eventThroughput struct {
	produced, applied float64 // per second
	drained           time.Duration
}

func measureEventThroughput(p eventProbe, run loopResult, cpf string) eventThroughput {
	drained := p.lag(cpf, 5*time.Minute)
	return eventThroughput{produced: run.rate(), drained: drained,
		applied: float64(run.ok+1) / (run.elapsed + drained).Seconds()}
}

func (e eventThroughput) String() string {
	return fmt.Sprintf("events: produced %.0f/s at the 8-caller rate; the last one visible in Base C %dms after the load ended; applied ≥ %.0f/s = %.2f× the production rate",
		e.produced, e.drained.Milliseconds(), e.applied, e.applied/max(e.produced, 1))
}

// waitDrained waits (up to a minute) until the bases' event queues are
// empty, so one measurement does not pay for the previous one's events.
func waitDrained(b *testing.B, amqpURL string) {
	b.Helper()
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	for time.Since(start) < time.Minute {
		waiting := 0
		for _, q := range []string{"basec.events", "baseb.debt-summaries"} {
			ch, err := conn.Channel()
			if err != nil {
				b.Fatal(err)
			}
			if st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
				waiting += st.Messages
			}
			_ = ch.Close()
		}
		if waiting == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("bench: event queues not drained after a minute; the next figures include their backlog\n")
}
