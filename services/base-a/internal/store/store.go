// Package store is Base A's PostgreSQL store: encrypted people and debts,
// grants stored as hashes, and the append-only audit log written in the
// same transaction as every use of a grant (no audit row, no data).
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/pgmigrate"
	"github.com/strata-bureau/strata/pkg/postgres"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/crypto"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationsVersion changes whenever the migrations do (for test templates).
func MigrationsVersion() string { return postgres.MigrationsVersion(migrations, "migrations") }

// AppRole is the least-privileged role the service runs as.
const AppRole = "strata_basea_app"

// Migrate applies the migrations as the owner at ownerURL and, when
// appPassword is set, lets the application role log in with it.
func Migrate(ctx context.Context, ownerURL, appPassword string) error {
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return fmt.Errorf("migrate: cannot connect as owner: %w", redact(err))
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if err := pgmigrate.Apply(ctx, conn, migrations, "migrations", "basea_schema_version", 4242001); err != nil {
		return err
	}
	if appPassword != "" {
		q := "ALTER ROLE " + AppRole + " LOGIN PASSWORD '" + strings.ReplaceAll(appPassword, "'", "''") + "'"
		if _, err := conn.Exec(ctx, q); err != nil {
			return errors.New("migrate: cannot set the application role's password")
		}
	}
	return nil
}

func redact(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return err
	}
	return errors.New("connection failed")
}

// Store is the Base A store.
type Store struct {
	pool    *pgxpool.Pool
	keys    *crypto.Keyring
	breaker *breaker.Breaker
	now     func() time.Time

	sweepMu   sync.Mutex
	lastSweep time.Time // the chainer's last scan of the whole low-water window
}

// New returns a store. b guards every database call.
func New(pool *pgxpool.Pool, keys *crypto.Keyring, b *breaker.Breaker) *Store {
	return &Store{pool: pool, keys: keys, breaker: b, now: time.Now}
}

// Pool is the connection pool (for the auditors' reads and the chainer).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// IsDBFailure is the breaker's failure test: domain refusals do not count,
// nor does a query that found no row (pgx.ErrNoRows: the database answered;
// a caller asking for an entry or head that does not exist must never open
// the breaker every partner shares), nor data found missing
// (domain.ErrDataLoss: the database answered, and no pause helps).
func IsDBFailure(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{pgx.ErrNoRows, domain.ErrNotFound, domain.ErrInvalid, domain.ErrDataLoss, domain.ErrGrantUnknown, domain.ErrGrantExpired,
		domain.ErrGrantUsedUp, domain.ErrGrantRevoked, domain.ErrGrantWrongCPF, domain.ErrGrantWrongField,
		domain.ErrGrantWrongPartner, context.Canceled} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// run calls fn through the database breaker. A statement PostgreSQL
// refuses because of its values (postgres.IsInputError: a NUL byte, an
// over-long value) is the caller's invalid input, never a database failure;
// the driver's message, which may quote the value, is dropped.
func (s *Store) run(fn func() error) error {
	return s.breaker.Run(func() error {
		err := fn()
		if postgres.IsInputError(err) {
			return fmt.Errorf("%w: a value holds characters or a size the store refuses", domain.ErrInvalid)
		}
		return err
	})
}

// tx runs fn in a transaction through the breaker; fn's error rolls back.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.run(func() error {
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, fn)
	})
}

// Ping checks the database through the breaker.
func (s *Store) Ping(ctx context.Context) error {
	return s.run(func() error { return s.pool.Ping(ctx) })
}

func (s *Store) cpfIndex(cpf string) []byte { return s.keys.BlindIndex("cpf", cpf) }

func aad(parts ...any) []byte { return []byte(fmt.Sprint(parts...)) }

// UpsertPerson creates or replaces a person's name and address.
func (s *Store) UpsertPerson(ctx context.Context, cpf, name string, addr domain.Address) error {
	idx := s.cpfIndex(cpf)
	ab, _ := json.Marshal(addr)
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO people (cpf_index, cpf_enc, name_enc, address_enc, key_version)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (cpf_index) DO UPDATE SET cpf_enc = EXCLUDED.cpf_enc, name_enc = EXCLUDED.name_enc,
				address_enc = EXCLUDED.address_enc, key_version = EXCLUDED.key_version, updated_at = now()`,
			idx,
			s.keys.Encrypt([]byte(cpf), aad("people.cpf|", idx)),
			s.keys.Encrypt([]byte(name), aad("people.name|", idx)),
			s.keys.Encrypt(ab, aad("people.address|", idx)),
			s.keys.Current())
		return err
	})
}

// RecordDebt creates or updates one debt (by contract id) and, in the same
// transaction, puts a debt.summary.changed event in the outbox.
func (s *Store) RecordDebt(ctx context.Context, cpf string, d domain.Debt) error {
	idx := s.cpfIndex(cpf)
	cidx := s.keys.BlindIndex("contract", cpf, d.ContractID)
	return s.tx(ctx, func(tx pgx.Tx) error {
		var version int64
		err := tx.QueryRow(ctx, `UPDATE people SET debt_version = debt_version + 1, updated_at = now()
			WHERE cpf_index = $1 RETURNING debt_version`, idx).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.ErrNotFound
		}
		if err != nil {
			return err
		}
		id := uuid.New()
		details, _ := json.Marshal(d)
		_, err = tx.Exec(ctx, `
			INSERT INTO debts (id, cpf_index, contract_index, details_enc, status, key_version)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (cpf_index, contract_index) DO UPDATE SET details_enc = EXCLUDED.details_enc,
				status = EXCLUDED.status, key_version = EXCLUDED.key_version, updated_at = now()`,
			id, idx, cidx, s.keys.Encrypt(details, aad("debts.details|", idx, "|", cidx)), d.Status, s.keys.Current())
		if err != nil {
			return err
		}
		debts, err := s.debts(ctx, tx, idx)
		if err != nil {
			return err
		}
		ev := &eventsv1.DebtSummaryChanged{Cpf: cpf, Currency: "BRL", AsOf: timestamppb.New(s.now()), Version: version}
		for _, x := range debts {
			if x.Status == domain.DebtOpen {
				ev.OpenCount++
				ev.OpenAmountCents += x.AmountCents
			}
		}
		body, err := proto.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO outbox (message_id, type, body, traceparent) VALUES ($1, $2, $3, NULLIF($4, ''))`,
			uuid.New(), eventtypes.DebtSummaryChanged, body, amqp.Traceparent(ctx))
		return err
	})
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (s *Store) debts(ctx context.Context, tx querier, idx []byte) ([]domain.Debt, error) {
	rows, err := tx.Query(ctx, `SELECT contract_index, details_enc, status, created_at, updated_at
		FROM debts WHERE cpf_index = $1 ORDER BY created_at, id`, idx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.Debt
	for rows.Next() {
		var cidx, enc []byte
		var d domain.Debt
		var status string
		var created, updated time.Time
		if err := rows.Scan(&cidx, &enc, &status, &created, &updated); err != nil {
			return nil, err
		}
		pt, _, err := s.keys.Decrypt(enc, aad("debts.details|", idx, "|", cidx))
		if err != nil {
			return nil, fmt.Errorf("debt details: %w", err)
		}
		if err := json.Unmarshal(pt, &d); err != nil {
			return nil, fmt.Errorf("debt details: %w", err)
		}
		d.Status, d.CreatedAt, d.UpdatedAt = status, created.UTC(), updated.UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

// readPerson decrypts the requested fields of a person inside tx.
func (s *Store) readPerson(ctx context.Context, tx pgx.Tx, cpf string, fields []string) (*domain.Person, error) {
	idx := s.cpfIndex(cpf)
	var nameEnc, addrEnc []byte
	err := tx.QueryRow(ctx, `SELECT name_enc, address_enc FROM people WHERE cpf_index = $1`, idx).Scan(&nameEnc, &addrEnc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	p := &domain.Person{CPF: cpf, Fields: fields}
	for _, f := range fields {
		switch f {
		case domain.FieldName:
			pt, _, err := s.keys.Decrypt(nameEnc, aad("people.name|", idx))
			if err != nil {
				return nil, fmt.Errorf("name: %w", err)
			}
			p.Name = string(pt)
		case domain.FieldAddress:
			pt, _, err := s.keys.Decrypt(addrEnc, aad("people.address|", idx))
			if err != nil {
				return nil, fmt.Errorf("address: %w", err)
			}
			var a domain.Address
			if err := json.Unmarshal(pt, &a); err != nil {
				return nil, err
			}
			p.Address = &a
		case domain.FieldDebts:
			d, err := s.debts(ctx, tx, idx)
			if err != nil {
				return nil, err
			}
			p.Debts = d
		}
	}
	return p, nil
}

// Holdings is what Base A holds about a CPF.
type Holdings struct {
	Person bool
	Debts  int64
	Grants int64
}

// Holdings reads what is held about cpf (for the data subject's report).
func (s *Store) Holdings(ctx context.Context, cpf string) (Holdings, error) {
	var h Holdings
	idx := s.cpfIndex(cpf)
	err := s.breaker.Run(func() error {
		return s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM people WHERE cpf_index = $1),
			(SELECT count(*) FROM debts WHERE cpf_index = $1), (SELECT count(*) FROM grants WHERE cpf_index = $1)`, idx).
			Scan(&h.Person, &h.Debts, &h.Grants)
	})
	return h, err
}
