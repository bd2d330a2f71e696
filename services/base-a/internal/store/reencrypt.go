package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Reencrypt rewrites every person and debt still under an older data key
// with the newest one, in batches, reporting progress. It is safe to run
// while serving and to interrupt: each batch commits on its own. (Audit
// rows are append-only and keep the key they were written with: keep old
// keys configured as long as audit entries under them must stay readable.)
func (s *Store) Reencrypt(ctx context.Context, progress func(table string, done, total int64)) error {
	cur := int(s.keys.Current())
	for _, table := range []string{"people", "debts"} {
		var total int64
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE key_version <> $1`, cur).Scan(&total); err != nil {
			return err
		}
		var done int64
		for {
			n, err := s.reencryptBatch(ctx, table, cur)
			if err != nil {
				return err
			}
			done += int64(n)
			if progress != nil {
				progress(table, done, total)
			}
			if n == 0 {
				break
			}
		}
	}
	return nil
}

func (s *Store) reencryptBatch(ctx context.Context, table string, cur int) (int, error) {
	n := 0
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) (err error) {
		if table == "people" {
			n, err = s.reencryptPeople(ctx, tx, cur)
		} else {
			n, err = s.reencryptDebts(ctx, tx, cur)
		}
		return err
	})
	return n, err
}

// reencryptPeople re-encrypts up to 200 people rows not under key cur.
func (s *Store) reencryptPeople(ctx context.Context, tx pgx.Tx, cur int) (int, error) {
	rows, err := tx.Query(ctx, `SELECT cpf_index, cpf_enc, name_enc, address_enc FROM people WHERE key_version <> $1 LIMIT 200 FOR UPDATE`, cur)
	if err != nil {
		return 0, err
	}
	type rec struct{ Idx, CPF, Name, Address []byte } // the columns, in order
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rec])
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		var out [3][]byte
		for i, pair := range [][2][]byte{{r.CPF, aad("people.cpf|", r.Idx)}, {r.Name, aad("people.name|", r.Idx)}, {r.Address, aad("people.address|", r.Idx)}} {
			pt, _, err := s.keys.Decrypt(pair[0], pair[1])
			if err != nil {
				return 0, err
			}
			out[i] = s.keys.Encrypt(pt, pair[1])
		}
		if _, err := tx.Exec(ctx, `UPDATE people SET cpf_enc = $2, name_enc = $3, address_enc = $4, key_version = $5 WHERE cpf_index = $1`,
			r.Idx, out[0], out[1], out[2], cur); err != nil {
			return 0, err
		}
	}
	return len(recs), nil
}

// reencryptDebts re-encrypts up to 200 debts rows not under key cur.
func (s *Store) reencryptDebts(ctx context.Context, tx pgx.Tx, cur int) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, cpf_index, contract_index, details_enc FROM debts WHERE key_version <> $1 LIMIT 200 FOR UPDATE`, cur)
	if err != nil {
		return 0, err
	}
	type rec struct { // the columns, in order
		ID                    [16]byte
		Idx, Contract, Detail []byte
	}
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rec])
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		a := aad("debts.details|", r.Idx, "|", r.Contract)
		pt, _, err := s.keys.Decrypt(r.Detail, a)
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `UPDATE debts SET details_enc = $2, key_version = $3 WHERE id = $1`, r.ID, s.keys.Encrypt(pt, a), cur); err != nil {
			return 0, err
		}
	}
	return len(recs), nil
}
