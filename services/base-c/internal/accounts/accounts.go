// Package accounts creates, rotates and disables Base C's basic-auth
// accounts, and tells every replica to drop cached credentials.
package accounts

import (
	"context"
	"fmt"

	"github.com/strata-bureau/strata/services/base-c/internal/auth"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// Store is what the manager needs.
type Store interface {
	CreateAccount(ctx context.Context, username, hash string, admin bool) error
	SetPassword(ctx context.Context, username, hash string) error
	SetDisabled(ctx context.Context, username string, disabled bool) error
}

// Manager changes accounts.
type Manager struct {
	Store  Store
	Params auth.Params
	// Invalidate drops cached credentials on every replica (this one
	// included); it must succeed for a change to be reported done.
	Invalidate func(ctx context.Context, username string) error
}

func check(username, password string) error {
	if !auth.ValidUsername(username) {
		return fmt.Errorf("%w: username must be 1-64 characters of letters, digits and . _ @ -", domain.ErrInvalid)
	}
	if err := auth.ValidPassword(password); err != nil {
		return fmt.Errorf("%w: %w", domain.ErrInvalid, err)
	}
	return nil
}

// Create adds an account.
func (m *Manager) Create(ctx context.Context, username, password string, admin bool) error {
	if err := check(username, password); err != nil {
		return err
	}
	hash, err := auth.Hash(password, m.Params)
	if err != nil {
		return err
	}
	return m.Store.CreateAccount(ctx, username, hash, admin)
}

// Rotate sets a new password; the old one stops working on every replica.
func (m *Manager) Rotate(ctx context.Context, username, password string) error {
	if err := check(username, password); err != nil {
		return err
	}
	hash, err := auth.Hash(password, m.Params)
	if err != nil {
		return err
	}
	if err := m.Store.SetPassword(ctx, username, hash); err != nil {
		return err
	}
	return m.invalidate(ctx, username)
}

// Disable stops the account on every replica.
func (m *Manager) Disable(ctx context.Context, username string) error {
	if !auth.ValidUsername(username) {
		return fmt.Errorf("%w: invalid username", domain.ErrInvalid)
	}
	if err := m.Store.SetDisabled(ctx, username, true); err != nil {
		return err
	}
	return m.invalidate(ctx, username)
}

func (m *Manager) invalidate(ctx context.Context, username string) error {
	if m.Invalidate == nil {
		return nil
	}
	if err := m.Invalidate(ctx, username); err != nil {
		return fmt.Errorf("account changed, but replicas may trust the old credential for up to the cache TTL: %w", err)
	}
	return nil
}
