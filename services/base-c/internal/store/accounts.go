package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

type accountDoc struct {
	Username       string    `bson:"_id"`
	PasswordHash   string    `bson:"password_hash"`
	Disabled       bool      `bson:"disabled"`
	Admin          bool      `bson:"admin"`
	FailedAttempts int       `bson:"failed_attempts"`
	LockedUntil    time.Time `bson:"locked_until"`
	CreatedAt      time.Time `bson:"created_at"`
	UpdatedAt      time.Time `bson:"updated_at"`
}

func (d accountDoc) domain() *domain.Account {
	return &domain.Account{Username: d.Username, PasswordHash: d.PasswordHash, Disabled: d.Disabled, Admin: d.Admin,
		FailedAttempts: d.FailedAttempts, LockedUntil: d.LockedUntil.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
}

// GetAccount returns the account or ErrNotFound.
func (s *Store) GetAccount(ctx context.Context, username string) (*domain.Account, error) {
	var doc accountDoc
	err := s.accounts.FindOne(ctx, bson.M{"_id": username}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, domain.ErrNotFound
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return doc.domain(), nil
}

// CreateAccount stores a new account or returns ErrExists.
func (s *Store) CreateAccount(ctx context.Context, username, hash string, admin bool) error {
	now := time.Now().UTC()
	_, err := s.accounts.InsertOne(ctx, accountDoc{Username: username, PasswordHash: hash, Admin: admin, CreatedAt: now, UpdatedAt: now})
	if mongo.IsDuplicateKeyError(err) {
		return domain.ErrExists
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// SetPassword replaces the hash, re-enables nothing, and clears failures.
func (s *Store) SetPassword(ctx context.Context, username, hash string) error {
	return s.update(ctx, username, bson.M{"password_hash": hash, "failed_attempts": 0, "locked_until": time.Time{}})
}

// SetDisabled disables or re-enables the account.
func (s *Store) SetDisabled(ctx context.Context, username string, disabled bool) error {
	return s.update(ctx, username, bson.M{"disabled": disabled})
}

func (s *Store) update(ctx context.Context, username string, set bson.M) error {
	set["updated_at"] = time.Now().UTC()
	res, err := s.accounts.UpdateOne(ctx, bson.M{"_id": username}, bson.M{"$set": set})
	if err != nil {
		return unavailable(err)
	}
	if res.MatchedCount == 0 {
		return domain.ErrNotFound
	}
	return nil
}

// RecordFailure counts a failed login and returns the new count.
func (s *Store) RecordFailure(ctx context.Context, username string) (int, error) {
	var doc accountDoc
	err := s.accounts.FindOneAndUpdate(ctx, bson.M{"_id": username},
		bson.M{"$inc": bson.M{"failed_attempts": 1}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, domain.ErrNotFound
	}
	if err != nil {
		return 0, unavailable(err)
	}
	return doc.FailedAttempts, nil
}

// LockUntil locks the account until t.
func (s *Store) LockUntil(ctx context.Context, username string, t time.Time) error {
	return s.update(ctx, username, bson.M{"locked_until": t.UTC()})
}

// ResetFailures clears the failure count after a successful login.
func (s *Store) ResetFailures(ctx context.Context, username string) error {
	_, err := s.accounts.UpdateOne(ctx, bson.M{"_id": username, "failed_attempts": bson.M{"$gt": 0}},
		bson.M{"$set": bson.M{"failed_attempts": 0, "locked_until": time.Time{}}})
	if err != nil {
		return unavailable(err)
	}
	return nil
}
