// Package witness keeps Base A's signed audit-log heads outside Base A's
// database. Every head Base A publishes (audit.checkpoint.signed) is
// checked — signature with the log's public verifier key, and a
// consistency proof (RFC 6962, golang.org/x/mod/sumdb/tlog) from the last
// head kept — before it is kept in the gateway's database and appended to
// an append-only file. A head that is older than one kept, forks from it
// or cannot be proven consistent is recorded as an alarm, never kept: a
// database administrator who rewrites or cuts Base A's log and re-signs
// cannot make the witness forget what it saw.
package witness

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/checkpoint"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// Open verifies a signed head with the witness's trusted key v and reads
// it (pkg/checkpoint, the format Base A signs). The head must be of the
// log v names (a log's key is named by its origin), and not of the empty
// tree: there is nothing to witness before the first entry.
func Open(msg []byte, v note.Verifier) (checkpoint.Head, error) {
	h, err := checkpoint.Open(msg, v.Name(), v)
	if err != nil {
		return checkpoint.Head{}, err
	}
	if h.Size < 1 {
		return checkpoint.Head{}, errors.New("bad size")
	}
	return h, nil
}

// Prover asks Base A for a consistency proof between two tree sizes.
type Prover func(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)

// Witness checks and keeps heads.
type Witness struct {
	Store    *store.Store
	Verifier note.Verifier
	Prove    Prover
	// File, when set, gets every kept head appended (base64, one a line).
	File   string
	Logger *slog.Logger
	// OnAlarm, when set, is called once per alarm raised (for a metric).
	OnAlarm func(kind string)

	mu sync.Mutex
}

// Handle is the AMQP handler for audit.checkpoint.signed.
func (w *Witness) Handle(ctx context.Context, d amqp.Delivery) error {
	if d.Type != eventtypes.AuditCheckpointSigned {
		return nil
	}
	var ev eventsv1.AuditCheckpointSigned
	if err := proto.Unmarshal(d.Body, &ev); err != nil {
		return amqp.Permanent(fmt.Errorf("audit.checkpoint.signed: %w", err))
	}
	return w.Observe(ctx, ev.GetNote())
}

// Observe checks one signed head and keeps it, or raises an alarm. It
// returns an error only when it could not decide (to be retried).
func (w *Witness) Observe(ctx context.Context, msg []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, err := Open(msg, w.Verifier)
	if err != nil {
		return w.alarm(ctx, 0, "signed head does not verify: "+err.Error(), msg)
	}
	last, err := w.Store.LastWitnessedHead(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return w.keep(ctx, h)
	case err != nil:
		return err
	}
	var lastRoot tlog.Hash
	copy(lastRoot[:], last.Root)
	switch {
	case h.Size == last.Size && h.Root == lastRoot:
		return nil // seen (a redelivery)
	case h.Size == last.Size:
		return w.alarm(ctx, h.Size, fmt.Sprintf("a different head of size %d than the one witnessed (a fork)", h.Size), msg)
	case h.Size < last.Size:
		if old, err := w.Store.WitnessedHeadAt(ctx, h.Size); err == nil && string(old.Root) == string(h.Root[:]) {
			return nil
		}
		// An older head arriving late is fine only if the newest kept
		// head extends it.
		p, err := w.Prove(ctx, h.Size, last.Size)
		if err != nil {
			return w.refused(ctx, h.Size, last.Size, err, msg)
		}
		if tlog.CheckTree(p, last.Size, lastRoot, h.Size, h.Root) != nil {
			return w.alarm(ctx, h.Size, fmt.Sprintf("head of size %d is older than and inconsistent with the witnessed head of size %d", h.Size, last.Size), msg)
		}
		return w.keep(ctx, h)
	}
	p, err := w.Prove(ctx, last.Size, h.Size)
	if err != nil {
		return w.refused(ctx, last.Size, h.Size, err, msg)
	}
	if tlog.CheckTree(p, h.Size, h.Root, last.Size, lastRoot) != nil {
		return w.alarm(ctx, h.Size, fmt.Sprintf("head of size %d is not an extension of the witnessed head of size %d", h.Size, last.Size), msg)
	}
	return w.keep(ctx, h)
}

// refused handles a consistency proof Base A did not give. A passing
// fault (Base A or its database unreachable, busy, slow; the gateway's
// pool out of replicas or its breaker open) is returned, so the head is
// retried. Anything else — Base A answering that the tree hashes are
// missing (DataLoss), that no head covers the size, or any other refusal —
// will not heal by retrying: it is an alarm, raised now, instead of a
// message requeued until it is dead-lettered with nobody told.
func (w *Witness) refused(ctx context.Context, oldSize, newSize int64, err error, msg []byte) error {
	if Transient(err) {
		return fmt.Errorf("consistency proof %d→%d: %w", oldSize, newSize, err)
	}
	return w.alarm(ctx, newSize, fmt.Sprintf("Base A refused the consistency proof %d→%d (%s): %s",
		oldSize, newSize, status.Code(err), status.Convert(err).Message()), msg)
}

// Transient reports whether a failed proof request may succeed if retried.
// Errors without a gRPC status (the gateway's pool: no replica, bulkhead
// full; an open breaker; a context ending) are transient.
func Transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	st, ok := status.FromError(err)
	if !ok {
		return true
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Canceled,
		codes.Internal, codes.Unknown:
		return true
	}
	return false
}

// Thin keeps, of the heads received more than denseFor ago, only the
// largest of each UTC day (at 10 s checkpoints a year of heads would be
// three million rows; thinned, it is 365). The newest head is always kept,
// and a late older head is still checked against it with a consistency
// proof, so thinning loses no check, only redundant evidence. The
// append-only file is left whole: it is the operator's copy, rotated by
// the operator.
func (w *Witness) Thin(ctx context.Context, denseFor time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.Store.ThinWitnessedHeads(ctx, time.Now().Add(-denseFor))
	if err != nil {
		w.Logger.WarnContext(ctx, "audit witness: thinning old heads failed (retried next hour)", "err", err)
		return
	}
	if n > 0 {
		w.Logger.InfoContext(ctx, "audit witness: old heads thinned to one a day", "deleted", n)
	}
}

func (w *Witness) keep(ctx context.Context, h checkpoint.Head) error {
	if err := w.Store.KeepWitnessedHead(ctx, store.WitnessedHead{Size: h.Size, Root: h.Root[:], Note: h.Note}); err != nil {
		return err
	}
	if w.File == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(w.File), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(w.File, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(h.Note) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (w *Witness) alarm(ctx context.Context, size int64, problem string, msg []byte) error {
	w.Logger.ErrorContext(ctx, "AUDIT WITNESS ALARM: Base A's audit log may have been tampered with", "size", size, "problem", problem)
	if w.OnAlarm != nil {
		w.OnAlarm(alarmKind(problem))
	}
	if err := w.Store.WitnessAlarm(ctx, size, problem, msg); err != nil {
		return err
	}
	return nil
}

// alarmKind is a short, bounded label for an alarm's metric.
func alarmKind(problem string) string {
	switch {
	case strings.HasPrefix(problem, "signed head does not verify"):
		return "signature"
	case strings.HasPrefix(problem, "Base A refused the consistency proof"):
		return "proof_refused"
	case strings.Contains(problem, "fork"):
		return "fork"
	default:
		return "inconsistent"
	}
}
