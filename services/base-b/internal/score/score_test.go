package score_test

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-bureau/strata/services/base-b/internal/domain"
	"github.com/strata-bureau/strata/services/base-b/internal/score"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func codes(s domain.Score) []string {
	var out []string
	for _, r := range s.Reasons {
		out = append(out, r.Code)
	}
	return out
}

func TestScoreTable(t *testing.T) {
	t.Parallel()
	income := func(c int64) []domain.IncomeSource { return []domain.IncomeSource{{MonthlyAmountCents: c}} }
	assets := func(c int64) []domain.Asset { return []domain.Asset{{ValueCents: c}} }
	tests := []struct {
		name    string
		p       domain.Profile
		score   int
		band    string
		reasons []string
	}{
		{"empty profile", domain.Profile{}, 450, "low", []string{"R01", "R02", "R03"}},
		{"strong profile", domain.Profile{BirthDate: "1980-05-01", IncomeSources: income(1_500_000), Assets: assets(50_000_000)},
			900, "very_high", nil},
		{"young, modest income", domain.Profile{BirthDate: "2004-01-01", IncomeSources: income(250_000)},
			550, "medium", []string{"R02", "R01", "R03"}},
		{"open debts without income", domain.Profile{BirthDate: "1990-01-01", DebtSummary: &domain.DebtSummary{OpenCount: 3, OpenAmountCents: 1_000_000}},
			180, "very_low", []string{"R05", "R01", "R02", "R04"}},
		{"debt load against income", domain.Profile{BirthDate: "1970-01-01", IncomeSources: income(500_000), Assets: assets(2_000_000),
			DebtSummary: &domain.DebtSummary{OpenCount: 1, OpenAmountCents: 3_000_000}}, 630, "medium", []string{"R02", "R05", "R04"}},
		{"senior", domain.Profile{BirthDate: "1950-01-01", IncomeSources: income(1_000_000), Assets: assets(100_000_000)},
			880, "very_high", []string{"R03"}},
		{"everything bad clamps at 0", domain.Profile{BirthDate: "2005-06-01", DebtSummary: &domain.DebtSummary{OpenCount: 9, OpenAmountCents: 99_000_000}},
			20, "very_low", []string{"R05", "R01", "R04", "R02"}},
	}
	for _, tc := range tests {
		got := score.Compute(&tc.p, now)
		if got.Score != tc.score || got.Band != tc.band || !slices.Equal(codes(got), tc.reasons) || got.ModelVersion != score.ModelVersion {
			t.Errorf("%s: got %d %s %v, want %d %s %v", tc.name, got.Score, got.Band, codes(got), tc.score, tc.band, tc.reasons)
		}
		// Deterministic: the same input scores the same.
		if again := score.Compute(&tc.p, now); again.Score != got.Score || !slices.Equal(codes(again), codes(got)) {
			t.Errorf("%s: not deterministic", tc.name)
		}
	}
}

func TestBands(t *testing.T) {
	t.Parallel()
	for s, b := range map[int]string{0: "very_low", 299: "very_low", 300: "low", 499: "low", 500: "medium", 699: "medium", 700: "high", 849: "high", 850: "very_high", 1000: "very_high"} {
		if got := score.Band(s); got != b {
			t.Errorf("Band(%d) = %s, want %s", s, got, b)
		}
	}
}
