package store

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

// SeedPerson is one synthetic person for SeedPeople.
type SeedPerson struct {
	CPF, Name string
	Address   domain.Address
}

// SeedPeople inserts people in one statement, encrypted as UpsertPerson
// does, leaving any person already stored untouched (so seeding twice
// changes nothing). It returns how many were new.
func (s *Store) SeedPeople(ctx context.Context, people []SeedPerson) (int64, error) {
	n := len(people)
	idx, cpfs, names, addrs := make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
	for i, p := range people {
		ix := s.cpfIndex(p.CPF)
		ab, _ := json.Marshal(p.Address)
		idx[i] = ix
		cpfs[i] = s.keys.Encrypt([]byte(p.CPF), aad("people.cpf|", ix))
		names[i] = s.keys.Encrypt([]byte(p.Name), aad("people.name|", ix))
		addrs[i] = s.keys.Encrypt(ab, aad("people.address|", ix))
	}
	var added int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO people (cpf_index, cpf_enc, name_enc, address_enc, key_version)
			SELECT i, c, nm, a, $5 FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[]) AS t(i, c, nm, a)
			ON CONFLICT (cpf_index) DO NOTHING`, idx, cpfs, names, addrs, s.keys.Current())
		added = tag.RowsAffected()
		return err
	})
	return added, err
}
