package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

// leafColumns select an entry with its chain position, raw (the CPF stays
// encrypted: verifiers hash the ciphertext). A link whose entry is gone
// reads as deleted; non-null columns are coalesced so rows scan without
// an allocation per column.
const leafColumns = `c.seq, a.id IS NULL, coalesce(a.id, 0), coalesce(a.entry_id, '00000000-0000-0000-0000-000000000000'),
	coalesce(a.at, 'epoch'), coalesce(a.partner_id, ''), coalesce(a.caller, ''), a.cpf_index, a.cpf_enc, coalesce(a.purpose, ''),
	coalesce(a.reason, ''), a.fields, coalesce(a.outcome, ''), coalesce(a.client_ip, ''), coalesce(a.trace_id, ''), a.grant_id`

func scanLeaf(row pgx.Row, extra ...any) (audit.LogEntry, error) {
	var e audit.LogEntry
	var entryID [16]byte
	var grantID pgtype.UUID
	r := &e.Row
	dest := append([]any{&e.Seq, &e.Deleted, &r.AuditID, &entryID, &r.At, &r.PartnerID, &r.Caller, &r.CPFIndex, &e.CPFEnc, &r.Purpose,
		&r.Reason, &r.Fields, &r.Outcome, &r.ClientIP, &r.TraceID, &grantID}, extra...)
	if err := row.Scan(dest...); err != nil {
		return e, err
	}
	if e.Deleted {
		e.Row = audit.Row{}
		return e, nil
	}
	r.EntryID, r.At = uuid.UUID(entryID).String(), r.At.UTC()
	if grantID.Valid {
		r.GrantID = uuid.UUID(grantID.Bytes).String()
	}
	if r.Fields == nil {
		r.Fields = []string{}
	}
	return e, nil
}

type treeReader struct {
	ctx context.Context
	q   interface {
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (r treeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	rows, err := r.q.Query(r.ctx, `SELECT idx, hash FROM audit_tree WHERE idx = ANY($1)`, indexes)
	if err != nil {
		return nil, err
	}
	got := map[int64]tlog.Hash{}
	for rows.Next() {
		var i int64
		var h []byte
		if err := rows.Scan(&i, &h); err != nil {
			rows.Close()
			return nil, err
		}
		var x tlog.Hash
		copy(x[:], h)
		got[i] = x
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	for k, i := range indexes {
		h, ok := got[i]
		if !ok {
			return nil, fmt.Errorf("%w: tree hash %d is missing", domain.ErrDataLoss, i)
		}
		out[k] = h
	}
	return out, nil
}

func treeSize(ctx context.Context, tx pgx.Tx) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, `SELECT seq FROM audit_tree ORDER BY idx DESC LIMIT 1`).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// extendTree appends chained entries after the tree's end (at most limit)
// to the Merkle tree, inside the chainer's transaction. Existing entries
// from before the log was verifiable are migrated this way too.
func (s *Store) extendTree(ctx context.Context, tx pgx.Tx, limit int) (int64, error) {
	size, err := treeSize(ctx, tx)
	if err != nil {
		return 0, err
	}
	edge := map[int64]tlog.Hash{}
	if idx := audit.EdgeIndexes(size); len(idx) > 0 {
		hs, err := treeReader{ctx, tx}.ReadHashes(idx)
		if err != nil {
			return 0, err
		}
		for i, x := range idx {
			edge[x] = hs[i]
		}
	}
	t := audit.NewTree(size, edge)
	rows, err := tx.Query(ctx, `SELECT `+leafColumns+` FROM audit_chain c LEFT JOIN audit_log a ON a.id = c.audit_id
		WHERE c.seq > $1 ORDER BY c.seq LIMIT $2`, size, limit)
	if err != nil {
		return 0, err
	}
	var out [][]any
	for rows.Next() {
		e, err := scanLeaf(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		if e.Deleted || e.Seq != t.Size()+1 {
			break // never build over a hole: verification reports it
		}
		base := tlog.StoredHashIndex(0, t.Size())
		hs, err := t.Append(audit.LeafData(e.Seq, e.Row, e.CPFEnc))
		if err != nil {
			rows.Close()
			return 0, err
		}
		for i, h := range hs {
			out = append(out, []any{base + int64(i), e.Seq, h[:]})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(out) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_tree"}, []string{"idx", "seq", "hash"}, pgx.CopyFromRows(out)); err != nil {
			return 0, err
		}
	}
	return t.Size(), nil
}

// signHead signs the tree head of size (whose root the tree gives), stores
// it and puts it in the outbox as audit.checkpoint.signed, so it leaves the
// database for the witnesses as it is made.
func (s *Store) signHead(ctx context.Context, tx pgx.Tx, o ChainOptions, size int64, at time.Time) error {
	root, err := tlog.TreeHash(size, treeReader{ctx, tx})
	if err != nil {
		return err
	}
	signer, err := o.Keys.HeadSigner()
	if err != nil {
		return err
	}
	h, err := audit.SignHead(signer, size, root, at)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_heads (size, root, signed_at, note) VALUES ($1, $2, $3, $4)`,
		size, root[:], at, h.Note); err != nil {
		return err
	}
	body, err := proto.Marshal(&eventsv1.AuditCheckpointSigned{Size: size, Root: root[:], Note: h.Note, SignedAt: timestamppb.New(at)})
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO outbox (message_id, type, body, traceparent) VALUES ($1, $2, $3, NULLIF($4, ''))`,
		uuid.New(), eventtypes.AuditCheckpointSigned, body, amqp.Traceparent(ctx))
	return err
}

// LatestHead returns the newest signed head (ErrNotFound before the first).
func (s *Store) LatestHead(ctx context.Context) (audit.Head, error) {
	return s.head(ctx, 0)
}

func (s *Store) head(ctx context.Context, size int64) (audit.Head, error) {
	var h audit.Head
	var root []byte
	q := `SELECT size, root, signed_at, note FROM audit_heads ORDER BY size DESC LIMIT 1`
	args := []any{}
	if size > 0 {
		q, args = `SELECT size, root, signed_at, note FROM audit_heads WHERE size = $1`, []any{size}
	}
	err := s.breaker.Run(func() error {
		return s.pool.QueryRow(ctx, q, args...).Scan(&h.Size, &root, &h.At, &h.Note)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return h, domain.ErrNotFound
	}
	copy(h.Root[:], root)
	h.At = h.At.UTC()
	return h, err
}

// Proof is an inclusion proof of one entry in a signed head.
type Proof struct {
	Seq      int64
	Partner  string
	EntryID  string
	LeafData []byte
	LeafHash tlog.Hash
	Proof    tlog.RecordProof
	Head     audit.Head
}

// ProveEntry proves entry entryID is in the signed head of treeSize (0:
// the latest).
//
// partner, when not empty, restricts the proof to that partner's entries:
// another partner's entry is "not found" exactly like one that does not
// exist, before anything about it (coverage, tree hashes) is looked at.
func (s *Store) ProveEntry(ctx context.Context, entryID string, treeSize int64, partner string) (*Proof, error) {
	id, err := uuid.Parse(entryID)
	if err != nil {
		return nil, fmt.Errorf("%w: entry id must be a UUID", domain.ErrInvalid)
	}
	h, err := s.head(ctx, treeSize)
	if err != nil {
		return nil, err
	}
	p := &Proof{Head: h, EntryID: id.String()}
	err = s.breaker.Run(func() error {
		e, err := scanLeaf(s.pool.QueryRow(ctx, `SELECT `+leafColumns+` FROM audit_log a JOIN audit_chain c ON c.audit_id = a.id
			WHERE a.entry_id = $1 AND ($2 = '' OR a.partner_id = $2)`, id, partner))
		if err != nil {
			return err
		}
		if e.Seq > h.Size {
			return fmt.Errorf("%w: the entry is not yet covered by a signed head (retry in a few seconds)", domain.ErrNotFound)
		}
		p.Seq, p.Partner, p.LeafData = e.Seq, e.Row.PartnerID, audit.LeafData(e.Seq, e.Row, e.CPFEnc)
		p.LeafHash = tlog.RecordHash(p.LeafData)
		p.Proof, err = tlog.ProveRecord(h.Size, e.Seq-1, treeReader{ctx, s.pool})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: no such entry (or not yet in the log)", domain.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// ProveConsistency proves the tree of oldSize is a prefix of newSize's.
func (s *Store) ProveConsistency(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	var p tlog.TreeProof
	if oldSize < 1 || newSize < oldSize {
		return nil, fmt.Errorf("%w: need 1 <= old_size <= new_size", domain.ErrInvalid)
	}
	// Sizes past the latest signed head are not proven (not yet, or never);
	// within it every tree hash must be there, and one missing is data
	// loss, not the database being unavailable.
	latest, err := s.head(ctx, 0)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && newSize > latest.Size) {
		return nil, fmt.Errorf("%w: no signed head covers size %d", domain.ErrNotFound, newSize)
	}
	if err != nil {
		return nil, err
	}
	err = s.breaker.Run(func() error {
		var err error
		p, err = tlog.ProveTree(newSize, oldSize, treeReader{ctx, s.pool})
		return err
	})
	return p, err
}

// LogPage is a page of the exported log.
type LogPage struct {
	Entries    []audit.LogEntry
	Heads      [][]byte
	AnchorSize int64
	AnchorEdge map[int64]tlog.Hash
	More       bool
}

// ExportLog returns up to limit entries after afterSeq with the tree
// hashes stored with each, and the signed heads they reach (every later
// head on the last page). Only entries already in the tree are exported.
func (s *Store) ExportLog(ctx context.Context, afterSeq int64, limit int) (*LogPage, error) {
	p := &LogPage{}
	err := s.breaker.Run(func() error {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		size, err := treeSize(ctx, tx)
		if err != nil {
			return err
		}
		*p = LogPage{}
		if p.Entries, err = exportLeaves(ctx, tx, afterSeq, size, limit); err != nil {
			return err
		}
		if len(p.Entries) > limit {
			p.Entries, p.More = p.Entries[:limit], true
		}
		lo, hi := afterSeq, afterSeq
		if len(p.Entries) > 0 {
			first := p.Entries[0].Seq
			hi = p.Entries[len(p.Entries)-1].Seq
			// A log starting after a retention purge starts at its anchor.
			if afterSeq == 0 && first > 1 {
				if lo, err = exportAnchor(ctx, tx, p, first, lo); err != nil {
					return err
				}
			}
			if err := exportStoredHashes(ctx, tx, p.Entries, first, hi); err != nil {
				return err
			}
		}
		q, args := `SELECT note FROM audit_heads WHERE size > $1 AND size <= $2 ORDER BY size`, []any{lo, hi}
		if !p.More {
			q, args = `SELECT note FROM audit_heads WHERE size > $1 ORDER BY size LIMIT 10000`, []any{lo}
		}
		hrows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		p.Heads, err = pgx.CollectRows(hrows, pgx.RowTo[[]byte])
		return err
	})
	return p, err
}

// exportLeaves reads up to limit+1 entries after afterSeq, within the tree
// of the given size.
func exportLeaves(ctx context.Context, tx pgx.Tx, afterSeq, size int64, limit int) ([]audit.LogEntry, error) {
	rows, err := tx.Query(ctx, `SELECT `+leafColumns+` FROM audit_chain c LEFT JOIN audit_log a ON a.id = c.audit_id
			WHERE c.seq > $1 AND c.seq <= $2 ORDER BY c.seq LIMIT $3`, afterSeq, size, limit+1)
	if err != nil {
		return nil, err
	}
	var entries []audit.LogEntry
	for rows.Next() {
		e, err := scanLeaf(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		entries = append(entries, e)
	}
	rows.Close()
	return entries, rows.Err()
}

// exportAnchor sets p's anchor (size and edge hashes) when a retention
// purge ended before first, and returns the lower bound of the heads to
// export (lo unchanged without a purge).
func exportAnchor(ctx context.Context, tx pgx.Tx, p *LogPage, first, lo int64) (int64, error) {
	var through int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(through_seq), 0) FROM audit_purges`).Scan(&through); err != nil {
		return lo, err
	}
	if through <= 0 || through >= first {
		return lo, nil
	}
	p.AnchorSize, lo = through, through-1
	p.AnchorEdge = map[int64]tlog.Hash{}
	idx := audit.EdgeIndexes(through)
	hs, err := treeReader{ctx, tx}.ReadHashes(idx)
	if err != nil {
		return lo, err
	}
	for i, x := range idx {
		p.AnchorEdge[x] = hs[i]
	}
	return lo, nil
}

// exportStoredHashes sets on each entry (seq first..hi) the tree hashes
// stored with it.
func exportStoredHashes(ctx context.Context, tx pgx.Tx, entries []audit.LogEntry, first, hi int64) error {
	trows, err := tx.Query(ctx, `SELECT idx, seq, hash FROM audit_tree WHERE idx >= $1 AND idx < $2 ORDER BY idx`,
		tlog.StoredHashIndex(0, first-1), tlog.StoredHashIndex(0, hi))
	if err != nil {
		return err
	}
	bySeq := map[int64][]tlog.Hash{}
	for trows.Next() {
		var idx, seq int64
		var h []byte
		if err := trows.Scan(&idx, &seq, &h); err != nil {
			trows.Close()
			return err
		}
		var x tlog.Hash
		copy(x[:], h)
		bySeq[seq] = append(bySeq[seq], x)
	}
	trows.Close()
	if err := trows.Err(); err != nil {
		return err
	}
	for i := range entries {
		entries[i].Stored = bySeq[entries[i].Seq]
		if entries[i].Stored == nil {
			entries[i].Stored = []tlog.Hash{}
		}
	}
	return nil
}
