// Package domain holds Base C's types and errors, free of transport and
// storage concerns.
package domain

import (
	"errors"
	"time"
)

// Errors the store and services return; the gRPC edge maps them to codes.
var (
	ErrNotFound     = errors.New("not found")
	ErrInvalid      = errors.New("invalid input")
	ErrExists       = errors.New("already exists")
	ErrUnavailable  = errors.New("store unavailable")
	ErrUnauthorized = errors.New("invalid credentials")
	ErrThrottled    = errors.New("too many failed attempts; retry later")
	ErrOverloaded   = errors.New("too many credential checks in progress; retry later")
)

// LastQuery is the last credit-bureau query of a CPF.
type LastQuery struct {
	QueriedAt time.Time
	PartnerID string
	ClientIP  string
	Base      string
}

// Purchase is a credit-card purchase.
type Purchase struct {
	AmountCents  int64
	Currency     string
	Merchant     string
	Installments int32
	OccurredAt   time.Time
}

// Direction of a movement.
type Direction string

// Directions.
const (
	Credit Direction = "credit"
	Debit  Direction = "debit"
)

// Movement is one financial movement; append-only.
type Movement struct {
	ID          string
	CPF         string
	AmountCents int64
	Currency    string
	Direction   Direction
	Description string
	OccurredAt  time.Time
}

// Activity is what GetActivity returns.
type Activity struct {
	CPF          string
	LastQuery    *LastQuery
	LastPurchase *Purchase
	// Movements are the latest ones, newest first.
	Movements []Movement
}

// Empty reports whether nothing is known about the CPF.
func (a *Activity) Empty() bool {
	return a.LastQuery == nil && a.LastPurchase == nil && len(a.Movements) == 0
}

// MovementFilter selects movements for ListMovements.
type MovementFilter struct {
	CPF   string
	From  time.Time // inclusive; zero means unbounded
	To    time.Time // exclusive; zero means unbounded
	Limit int
	// After continues a listing: movements strictly older than this cursor.
	After *Cursor
}

// Cursor is a position in a newest-first listing.
type Cursor struct {
	OccurredAt time.Time
	ID         string
}

// Account is a basic-auth account.
type Account struct {
	Username       string
	PasswordHash   string
	Disabled       bool
	Admin          bool
	FailedAttempts int
	LockedUntil    time.Time
	UpdatedAt      time.Time
}
