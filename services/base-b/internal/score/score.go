// Package score is Base B's credit score: a documented, deterministic
// points model over income, assets, age and Base A's debt summary.
//
// The model (version strata-score-1):
//
//	base                                   500
//	income     +40 per R$ 1,000 a month     up to +200
//	assets     +10 per R$ 10,000            up to +150
//	age        under 25: -30; 25-34: 0; 35-59: +50; 60 and over: +30; unknown: -50
//	open debts -40 per open debt            up to -200
//	debt load  -200 × open amount ÷ yearly income, up to -250
//	           (open debts and no income: -250)
//
// The result is clamped to 0..1000. Bands: very_low < 300 ≤ low < 500 ≤
// medium < 700 ≤ high < 850 ≤ very_high. Reasons are the factors that cost
// the most points against their best case, largest first, at most four,
// leaving out factors at their best.
package score

import (
	"sort"
	"time"

	"github.com/strata-bureau/strata/services/base-b/internal/domain"
)

// ModelVersion identifies this model in every score.
const ModelVersion = "strata-score-1"

type factor struct {
	code, description string
	points, best      int
}

// Compute scores p at now.
func Compute(p *domain.Profile, now time.Time) domain.Score {
	income := p.MonthlyIncomeCents()
	assets := p.AssetsCents()
	var open int32
	var openAmount int64
	if d := p.DebtSummary; d != nil {
		open, openAmount = d.OpenCount, d.OpenAmountCents
	}

	fs := []factor{
		{"R01", "income is low or unknown", int(min(income/100_000*40, 200)), 200},
		{"R02", "few declared assets", int(min(assets/1_000_000*10, 150)), 150},
	}
	age := p.Age(now)
	agePts := 0
	switch {
	case age < 0:
		agePts = -50
	case age < 25:
		agePts = -30
	case age < 35:
		agePts = 0
	case age < 60:
		agePts = 50
	default:
		agePts = 30
	}
	fs = append(fs, factor{"R03", "age band carries more risk", agePts, 50})
	fs = append(fs, factor{"R04", "open debts", -int(min(int64(open)*40, 200)), 0})
	load := 0
	switch {
	case openAmount <= 0:
	case income <= 0:
		load = -250
	default:
		load = -int(min(openAmount*200/(12*income), 250))
	}
	fs = append(fs, factor{"R05", "open debt is high relative to income", load, 0})

	total := 500
	for _, f := range fs {
		total += f.points
	}
	total = max(0, min(total, 1000))

	sort.SliceStable(fs, func(i, j int) bool { return fs[i].best-fs[i].points > fs[j].best-fs[j].points })
	var reasons []domain.Reason
	for _, f := range fs {
		if f.best-f.points <= 0 || len(reasons) == 4 {
			break
		}
		reasons = append(reasons, domain.Reason{Code: f.code, Description: f.description})
	}
	return domain.Score{CPF: p.CPF, Score: total, Band: Band(total), Reasons: reasons, ModelVersion: ModelVersion}
}

// Band names the band of a score.
func Band(s int) string {
	switch {
	case s < 300:
		return "very_low"
	case s < 500:
		return "low"
	case s < 700:
		return "medium"
	case s < 850:
		return "high"
	}
	return "very_high"
}
