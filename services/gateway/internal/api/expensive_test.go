package api

import (
	"errors"
	"net/http"
	"testing"

	"github.com/strata-bureau/strata/services/gateway/internal/limits"
)

// One expensive call at a time per partner still let a partner run them
// back to back and keep a steady share of the base (make abuse: a hostile
// partner's stream of big audit pages raised the other partner's Base A
// latency). Past its rate a partner is refused (429 expensive-call-budget)
// while another partner is served, and a refused call holds no slot.
func TestExpensiveCallsAreSpacedPerPartner(t *testing.T) {
	t.Parallel()
	h := &Handlers{Expensive: limits.NewConcurrency(4, 1), ExpensiveRate: limits.New(), ExpensivePerSecond: 0.001, ExpensiveBurst: 3}
	hostile, other := Caller{PartnerID: "evil-bank"}, Caller{PartnerID: "good-bank"}
	for i := range 3 {
		release, err := h.expensive(hostile)
		if err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
		release()
	}
	_, err := h.expensive(hostile)
	var p *Problem
	if !errors.As(err, &p) || p.Status != http.StatusTooManyRequests || p.Type != urn+"expensive-call-budget" {
		t.Fatalf("past the rate: want 429 expensive-call-budget, got %v", err)
	}
	release, err := h.expensive(other)
	if err != nil {
		t.Fatalf("another partner refused: %v", err)
	}
	release()
}
