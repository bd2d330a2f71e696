// Package domain holds Base B's types and errors.
package domain

import (
	"errors"
	"time"
)

// Errors the store and services return; the gRPC edge maps them to codes.
var (
	ErrNotFound    = errors.New("not found")
	ErrInvalid     = errors.New("invalid input")
	ErrUnavailable = errors.New("store unavailable")
)

// Asset kinds.
const (
	AssetRealEstate = "real_estate"
	AssetVehicle    = "vehicle"
	AssetInvestment = "investment"
	AssetOther      = "other"
)

// Income kinds.
const (
	IncomeSalary       = "salary"
	IncomeSelfEmployed = "self_employed"
	IncomePension      = "pension"
	IncomeRental       = "rental"
	IncomeInvestment   = "investment"
	IncomeOther        = "other"
)

// Address of a person.
type Address struct {
	Street     string `bson:"street"`
	Number     string `bson:"number"`
	Complement string `bson:"complement"`
	District   string `bson:"district"`
	City       string `bson:"city"`
	State      string `bson:"state"`
	PostalCode string `bson:"postal_code"`
}

// Asset owned by a person.
type Asset struct {
	ID          string `bson:"id"`
	Kind        string `bson:"kind"`
	Description string `bson:"description"`
	ValueCents  int64  `bson:"value_cents"`
	Currency    string `bson:"currency"`
}

// IncomeSource of a person.
type IncomeSource struct {
	ID                 string `bson:"id"`
	Kind               string `bson:"kind"`
	MonthlyAmountCents int64  `bson:"monthly_amount_cents"`
	Currency           string `bson:"currency"`
	Since              string `bson:"since"` // YYYY-MM-DD
}

// DebtSummary is what Base A publishes: never the debt list.
type DebtSummary struct {
	OpenCount       int32     `bson:"open_count"`
	OpenAmountCents int64     `bson:"open_amount_cents"`
	Currency        string    `bson:"currency"`
	AsOf            time.Time `bson:"as_of"`
	Version         int64     `bson:"version"`
}

// Profile is Base B's record of one CPF.
type Profile struct {
	CPF           string         `bson:"_id"`
	BirthDate     string         `bson:"birth_date"` // YYYY-MM-DD
	Address       Address        `bson:"address"`
	Assets        []Asset        `bson:"assets"`
	IncomeSources []IncomeSource `bson:"income_sources"`
	DebtSummary   *DebtSummary   `bson:"debt_summary,omitempty"`
	UpdatedAt     time.Time      `bson:"updated_at"`
}

// Age in whole years at now, or -1 when the birth date is unknown.
func (p *Profile) Age(now time.Time) int {
	b, err := time.Parse("2006-01-02", p.BirthDate)
	if err != nil {
		return -1
	}
	age := now.Year() - b.Year()
	if now.YearDay() < b.YearDay() {
		age--
	}
	return age
}

// MonthlyIncomeCents sums the income sources.
func (p *Profile) MonthlyIncomeCents() int64 {
	var t int64
	for _, s := range p.IncomeSources {
		t += s.MonthlyAmountCents
	}
	return t
}

// AssetsCents sums the assets.
func (p *Profile) AssetsCents() int64 {
	var t int64
	for _, a := range p.Assets {
		t += a.ValueCents
	}
	return t
}

// Reason is one factor lowering a score.
type Reason struct {
	Code        string
	Description string
}

// Score is a credit score.
type Score struct {
	CPF          string
	Score        int
	Band         string
	Reasons      []Reason
	ModelVersion string
}
