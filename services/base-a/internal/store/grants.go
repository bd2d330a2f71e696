package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-bureau/strata/pkg/input"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
	"github.com/strata-bureau/strata/services/base-a/internal/grants"
)

// Grant limits.
const (
	DefaultTTL     = 2 * time.Minute
	MaxTTL         = 5 * time.Minute
	DefaultMaxUses = 1
	MaxUses        = 10
)

// entry is an audit row to insert.
type entry struct {
	caller  domain.Caller
	cpf     string // may be empty (unknown grant)
	purpose string
	reason  string
	fields  []string
	outcome string
	grantID *uuid.UUID
	id      uuid.UUID // the entry id (new when zero)
}

// execer runs a statement: a transaction, or the pool for a statement
// that is a transaction of its own.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// audit inserts one audit row (inside tx, or as a statement of its own).
// Its failure fails the transaction: no audit row, no data.
func (s *Store) audit(ctx context.Context, tx execer, e entry) error {
	_, err := s.auditWhere(ctx, tx, e, "")
	return err
}

// auditWhere inserts e's audit row only when cond (SQL that may use $14
// and after, given in args) holds, and reports whether it did.
func (s *Store) auditWhere(ctx context.Context, tx execer, e entry, cond string, args ...any) (bool, error) {
	var idx, enc []byte
	if e.cpf != "" {
		idx = s.cpfIndex(e.cpf)
		enc = s.keys.Encrypt([]byte(e.cpf), aad("audit.cpf|", idx))
	}
	if e.fields == nil {
		e.fields = []string{}
	}
	if e.id == uuid.Nil {
		e.id = uuid.New()
	}
	q := `INSERT INTO audit_log (entry_id, at, partner_id, caller, cpf_index, cpf_enc, purpose, reason,
			fields, outcome, client_ip, trace_id, grant_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	if cond != "" {
		q = `INSERT INTO audit_log (entry_id, at, partner_id, caller, cpf_index, cpf_enc, purpose, reason,
			fields, outcome, client_ip, trace_id, grant_id)
		SELECT $1::uuid, $2::timestamptz, $3::text, $4::text, $5::bytea, $6::bytea, $7::text, $8::text, $9::text[],
			$10::text, $11::text, $12::text, $13::uuid WHERE ` + cond
	}
	tag, err := tx.Exec(ctx, q, append([]any{e.id, s.now().UTC(), e.caller.PartnerID, e.caller.Identity, idx, enc, e.purpose, e.reason,
		e.fields, e.outcome, e.caller.ClientIP, e.caller.TraceID, e.grantID}, args...)...)
	if err != nil {
		return false, fmt.Errorf("%w: %w", domain.ErrAuditFailed, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RecordAuditRead writes an audit entry for a read of the audit log itself:
// c is who looked, what describes the query, cpf the CPF it was about (if
// any). The caller answers only once it is committed.
func (s *Store) RecordAuditRead(ctx context.Context, c domain.Caller, cpf, what string) error {
	if len(what) > 500 {
		what = what[:500]
	}
	// One statement, one implicit transaction: committed when it returns.
	return s.run(func() error {
		return s.audit(ctx, s.pool, entry{caller: c, cpf: cpf, reason: what, outcome: domain.OutcomeAuditRead})
	})
}

// ValidateGrantRequest checks a request and applies defaults.
func ValidateGrantRequest(r *domain.GrantRequest) error {
	if !domain.ValidPurpose(r.Purpose) {
		return fmt.Errorf("%w: purpose must be one of credit_analysis, fraud_prevention, collection, consumer_request", domain.ErrInvalid)
	}
	if len([]rune(r.Reason)) < 10 || len(r.Reason) > 500 {
		return fmt.Errorf("%w: reason must be 10 to 500 characters", domain.ErrInvalid)
	}
	if err := input.Text(r.Reason, 500); err != nil {
		return fmt.Errorf("%w: reason %w", domain.ErrInvalid, err)
	}
	if len(r.Fields) == 0 {
		return fmt.Errorf("%w: at least one field (name, address, debts) is required", domain.ErrInvalid)
	}
	seen := map[string]bool{}
	for _, f := range r.Fields {
		if !domain.ValidField(f) {
			return fmt.Errorf("%w: unknown field %q (want name, address or debts)", domain.ErrInvalid, f)
		}
		seen[f] = true
	}
	r.Fields = r.Fields[:0]
	for _, f := range []string{domain.FieldName, domain.FieldAddress, domain.FieldDebts} {
		if seen[f] {
			r.Fields = append(r.Fields, f)
		}
	}
	switch {
	case r.TTL == 0:
		r.TTL = DefaultTTL
	case r.TTL < 0 || r.TTL > MaxTTL:
		return fmt.Errorf("%w: a grant lives at most %s", domain.ErrInvalid, MaxTTL)
	}
	switch {
	case r.MaxUses == 0:
		r.MaxUses = DefaultMaxUses
	case r.MaxUses < 0 || r.MaxUses > MaxUses:
		return fmt.Errorf("%w: max_uses must be 1 to %d", domain.ErrInvalid, MaxUses)
	}
	return nil
}

// issueGrant stores a grant for a person who exists and its audit entry
// in one statement (one round trip, one implicit transaction): the grant
// and its audit row commit together or not at all. It inserts no row when
// the person is unknown. Every round trip of a transaction waits for both
// the service and the database to be scheduled again, so on a busy machine
// the five of a BEGIN/SELECT/INSERT/INSERT/COMMIT transaction made the
// grant the slowest call in the tail (see README, abuse suite).
const issueGrant = `
WITH g AS (
	INSERT INTO grants (id, token_hash, partner_id, caller, cpf_index, purpose, reason, fields, expires_at, max_uses)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
	WHERE EXISTS (SELECT 1 FROM people WHERE cpf_index = $5::bytea)
	RETURNING id
)
INSERT INTO audit_log (entry_id, at, partner_id, caller, cpf_index, cpf_enc, purpose, reason, fields, outcome, client_ip, trace_id, grant_id)
SELECT $11, $12, $3::text, $4::text, $5::bytea, $13, $6::text, $7::text, $8::text[], $14, $15, $16, g.id FROM g`

// IssueGrant stores a new grant (its token only as a hash) and audits it.
func (s *Store) IssueGrant(ctx context.Context, c domain.Caller, r domain.GrantRequest) (_ *domain.Grant, err error) {
	ctx, span := storeSpan(ctx, "IssueGrant")
	defer func() { endSpan(span, err) }()
	if err := ValidateGrantRequest(&r); err != nil {
		return nil, err
	}
	token := grants.New()
	id := uuid.New()
	g := &domain.Grant{ID: id.String(), Token: token, CPF: r.CPF, Purpose: r.Purpose, Reason: r.Reason,
		Fields: r.Fields, ExpiresAt: s.now().Add(r.TTL).UTC().Truncate(time.Microsecond), MaxUses: r.MaxUses}
	idx := s.cpfIndex(r.CPF)
	err = s.run(func() error {
		tag, err := s.pool.Exec(ctx, issueGrant, id, grants.Hash(token), c.PartnerID, c.Identity, idx, r.Purpose, r.Reason,
			r.Fields, g.ExpiresAt, r.MaxUses, uuid.New(), s.now().UTC(), s.keys.Encrypt([]byte(r.CPF), aad("audit.cpf|", idx)),
			domain.OutcomeGrantIssued, c.ClientIP, c.TraceID)
		if err == nil && tag.RowsAffected() == 0 {
			return domain.ErrNotFound
		}
		return err
	})
	if errors.Is(err, domain.ErrNotFound) {
		// Asking about an unknown CPF is itself an access worth recording.
		_ = s.tx(ctx, func(tx pgx.Tx) error {
			return s.audit(ctx, tx, entry{caller: c, cpf: r.CPF, purpose: r.Purpose, reason: r.Reason, fields: r.Fields, outcome: domain.OutcomeNotFound})
		})
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// RevokeGrant ends a grant of the caller's partner.
func (s *Store) RevokeGrant(ctx context.Context, c domain.Caller, grantID string) error {
	id, err := uuid.Parse(grantID)
	if err != nil {
		return fmt.Errorf("%w: grant_id must be a UUID", domain.ErrInvalid)
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		var purpose, reason, partner string
		var idx []byte
		var fields []string
		err := tx.QueryRow(ctx, `SELECT partner_id, purpose, reason, fields, cpf_index FROM grants WHERE id = $1 FOR UPDATE`, id).
			Scan(&partner, &purpose, &reason, &fields, &idx)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && partner != c.PartnerID) {
			return domain.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE grants SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id); err != nil {
			return err
		}
		return s.auditIndexed(ctx, tx, c, idx, purpose, reason, fields, domain.OutcomeGrantRevoked, &id)
	})
}

// auditIndexed audits with a CPF known only by its index (revocation):
// the CPF ciphertext is copied from the person's record.
func (s *Store) auditIndexed(ctx context.Context, tx pgx.Tx, c domain.Caller, idx []byte, purpose, reason string, fields []string, outcome string, grantID *uuid.UUID) error {
	var cpfEnc []byte
	if err := tx.QueryRow(ctx, `SELECT cpf_enc FROM people WHERE cpf_index = $1`, idx).Scan(&cpfEnc); err != nil {
		return err
	}
	pt, _, err := s.keys.Decrypt(cpfEnc, aad("people.cpf|", idx))
	if err != nil {
		return err
	}
	return s.audit(ctx, tx, entry{caller: c, cpf: string(pt), purpose: purpose, reason: reason, fields: fields, outcome: outcome, grantID: grantID})
}

// ReadWithGrant returns the wanted fields of cpf if the grant allows it,
// using the grant once. The audit entry of the attempt, allowed or refused,
// is committed in the same transaction; when it cannot be, no data is
// returned. want nil means every field the grant opens.
func (s *Store) ReadWithGrant(ctx context.Context, c domain.Caller, cpf, token string, want []string) (_ *domain.Person, err error) {
	ctx, span := storeSpan(ctx, "ReadWithGrant")
	defer func() { endSpan(span, err) }()
	return s.readWithGrant(ctx, span, c, cpf, token, want)
}

func (s *Store) readWithGrant(ctx context.Context, span trace.Span, c domain.Caller, cpf, token string, want []string) (*domain.Person, error) {
	hash, perr := grants.Parse(token)
	if perr == nil {
		// One statement uses the grant, writes the audit entry and reads.
		p, ok, err := s.readFast(ctx, c, cpf, hash, want)
		if err != nil || ok {
			span.SetAttributes(attribute.String("strata.basea.read_path", "grant_audit_statement"))
			return p, err
		}
		// Refused (or raced). A token no grant has — what a guesser
		// sends — is recorded in one statement; a grant that exists goes
		// the careful path, which finds out why and audits it.
		recorded := false
		err = s.run(func() error {
			var err error
			recorded, err = s.auditWhere(ctx, s.pool, entry{caller: c, cpf: cpf, fields: want, outcome: domain.OutcomeDeniedUnknown},
				`NOT EXISTS (SELECT 1 FROM grants WHERE token_hash = $14)`, hash)
			return err
		})
		if err != nil || recorded {
			span.SetAttributes(attribute.String("strata.basea.read_path", "unknown_grant_statement"))
			if err != nil {
				return nil, err
			}
			return nil, domain.ErrGrantUnknown
		}
	} else {
		span.SetAttributes(attribute.String("strata.basea.read_path", "unparsable_grant_statement"))
		err := s.run(func() error {
			return s.audit(ctx, s.pool, entry{caller: c, cpf: cpf, fields: want, outcome: domain.OutcomeDeniedUnknown})
		})
		if err != nil {
			return nil, err
		}
		return nil, domain.ErrGrantUnknown
	}
	span.SetAttributes(attribute.String("strata.basea.read_path", "careful_transaction"))
	return s.readCareful(ctx, c, cpf, hash, want)
}

// readCareful uses an existing grant in a transaction that locks it: it
// finds why a grant refuses the read, or reads when a concurrent use made
// the one-statement read miss, and audits either outcome.
func (s *Store) readCareful(ctx context.Context, c domain.Caller, cpf string, hash []byte, want []string) (*domain.Person, error) {
	var person *domain.Person
	var refusal error
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var g grantRow
		err := tx.QueryRow(ctx, `SELECT id, partner_id, purpose, reason, cpf_index, fields, expires_at, max_uses, uses, revoked_at
			FROM grants WHERE token_hash = $1 FOR UPDATE`, hash).
			Scan(&g.id, &g.partner, &g.purpose, &g.reason, &g.idx, &g.fields, &g.expires, &g.maxUses, &g.uses, &g.revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			refusal = domain.ErrGrantUnknown
			return s.audit(ctx, tx, entry{caller: c, cpf: cpf, fields: want, outcome: domain.OutcomeDeniedUnknown})
		}
		if err != nil {
			return err
		}
		if want == nil {
			want = g.fields
		}
		id, purpose, reason := g.id, g.purpose, g.reason
		if refusal = s.refusal(g, c, cpf, want); refusal != nil {
			return s.audit(ctx, tx, entry{caller: c, cpf: cpf, purpose: purpose, reason: reason, fields: want,
				outcome: domain.OutcomeOf(refusal), grantID: &id})
		}
		if _, err := tx.Exec(ctx, `UPDATE grants SET uses = uses + 1 WHERE id = $1`, id); err != nil {
			return err
		}
		p, err := s.readPerson(ctx, tx, cpf, want)
		if err != nil {
			return err
		}
		entryID := uuid.New()
		if err := s.audit(ctx, tx, entry{caller: c, cpf: cpf, purpose: purpose, reason: reason, fields: want,
			outcome: domain.OutcomeAllowed, grantID: &id, id: entryID}); err != nil {
			return err
		}
		p.AuditEntryID = entryID.String()
		person = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		return nil, refusal
	}
	return person, nil
}

// fastRead uses the grant, writes the audit entry and reads the person in
// one statement (one round trip, one implicit transaction): the grant's use
// and its audit row commit together or not at all, and the row is only
// returned once the statement, commit included, has succeeded. It matches
// only a grant that allows the read; anything else returns ok=false.
const fastRead = `
WITH g AS (
	UPDATE grants SET uses = uses + 1
	WHERE token_hash = $1 AND partner_id = $2 AND cpf_index = $3 AND revoked_at IS NULL
		AND expires_at > now() AND uses < max_uses AND fields @> $4::text[]
	RETURNING id, purpose, reason, fields
), a AS (
	INSERT INTO audit_log (entry_id, at, partner_id, caller, cpf_index, cpf_enc, purpose, reason, fields, outcome, client_ip, trace_id, grant_id)
	SELECT $5, $6, $2, $7, $3, $8, g.purpose, g.reason,
		CASE WHEN cardinality($4::text[]) = 0 THEN g.fields ELSE $4::text[] END, 'allowed', $9, $10, g.id
	FROM g
	RETURNING fields
)
SELECT p.name_enc, p.address_enc, a.fields FROM people p, a WHERE p.cpf_index = $3`

func (s *Store) readFast(ctx context.Context, c domain.Caller, cpf string, hash []byte, want []string) (*domain.Person, bool, error) {
	idx := s.cpfIndex(cpf)
	if want == nil {
		want = []string{}
	}
	var nameEnc, addrEnc []byte
	var fields []string
	entryID := uuid.New()
	err := s.run(func() error {
		err := s.pool.QueryRow(ctx, fastRead, hash, c.PartnerID, idx, want, entryID, s.now().UTC(), c.Identity,
			s.keys.Encrypt([]byte(cpf), aad("audit.cpf|", idx)), c.ClientIP, c.TraceID).Scan(&nameEnc, &addrEnc, &fields)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", domain.ErrAuditFailed, err)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if fields == nil {
		return nil, false, nil
	}
	p := &domain.Person{CPF: cpf, Fields: fields, AuditEntryID: entryID.String()}
	for _, f := range fields {
		switch f {
		case domain.FieldName:
			pt, _, err := s.keys.Decrypt(nameEnc, aad("people.name|", idx))
			if err != nil {
				return nil, false, fmt.Errorf("name: %w", err)
			}
			p.Name = string(pt)
		case domain.FieldAddress:
			pt, _, err := s.keys.Decrypt(addrEnc, aad("people.address|", idx))
			if err != nil {
				return nil, false, fmt.Errorf("address: %w", err)
			}
			var a domain.Address
			if err := json.Unmarshal(pt, &a); err != nil {
				return nil, false, err
			}
			p.Address = &a
		case domain.FieldDebts:
			// Read after the audit row committed: never data without it.
			err := s.run(func() error {
				d, err := s.debts(ctx, s.pool, idx)
				p.Debts = d
				return err
			})
			if err != nil {
				return nil, false, err
			}
		}
	}
	return p, true, nil
}

// grantRow is a grant as ReadWithGrant's careful path reads it.
type grantRow struct {
	id                       uuid.UUID
	partner, purpose, reason string
	idx                      []byte
	fields                   []string
	expires                  time.Time
	maxUses, uses            int
	revoked                  *time.Time
}

// refusal says why g does not let caller c read the fields want of cpf,
// or nil when it does.
func (s *Store) refusal(g grantRow, c domain.Caller, cpf string, want []string) error {
	switch {
	case g.partner != c.PartnerID:
		return domain.ErrGrantWrongPartner
	case g.revoked != nil:
		return domain.ErrGrantRevoked
	case !s.now().Before(g.expires):
		return domain.ErrGrantExpired
	case g.uses >= g.maxUses:
		return domain.ErrGrantUsedUp
	case !slices.Equal(g.idx, s.cpfIndex(cpf)):
		return domain.ErrGrantWrongCPF
	}
	if grant := (domain.Grant{Fields: g.fields}); !grant.Covers(want) {
		return domain.ErrGrantWrongField
	}
	return nil
}
