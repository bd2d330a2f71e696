// Package events connects Base C to AMQP: a durable queue shared by the
// replicas applies cpf.queried, card.purchase.recorded and
// financial.movement.recorded to the store (idempotently, deduped on
// message_id by pkg/consumer), and a per-replica transient queue receives cache and
// credential invalidations from the other replicas.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/consumer"
	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/pkg/platform"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-c/internal/activity"
	"github.com/strata-bureau/strata/services/base-c/internal/auth"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// Credentials is what invalidations and other replicas' failed
// passwords act on.
type Credentials interface {
	Invalidate(user string)
	InvalidateAll()
	RecordFailure(auth.Failure)
}

// Consumer applies events.
type Consumer struct {
	Activity    *activity.Service
	Credentials Credentials
	// ReplicaID is this replica; its own broadcasts are ignored.
	ReplicaID string
	// Data applies data events once each (pkg/consumer: dedupe on
	// message_id, retries while the store is away, pruning).
	Data *consumer.Consumer
}

// New returns Base C's consumer. Its data events are deduped in dedupe;
// o sets the rest (retention, metrics, logger).
func New(acts *activity.Service, creds Credentials, replicaID string, dedupe consumer.Dedupe, o consumer.Options) (*Consumer, error) {
	c := &Consumer{Activity: acts, Credentials: creds, ReplicaID: replicaID}
	o.Dedupe, o.Apply, o.Retryable = dedupe, c.apply, retryable
	data, err := consumer.New(o)
	if err != nil {
		return nil, err
	}
	c.Data = data
	return c, nil
}

// HandleData applies one data event. Undecodable or invalid messages are
// permanent failures (dead-lettered); store failures are retried. Every
// apply is itself idempotent, so a crash between the apply and the dedupe
// mark only costs a harmless second apply on redelivery.
func (c *Consumer) HandleData(ctx context.Context, d amqp.Delivery) error {
	return c.Data.Handle(ctx, d)
}

// HandleDataBatch applies a batch of data events. cpf.queried events are
// coalesced to the newest per CPF and written in one bulk write; they need
// no dedupe marker, since recording an older or the same last query again
// changes nothing. Other events are applied one by one as by HandleData.
func (c *Consumer) HandleDataBatch(ctx context.Context, ds []amqp.Delivery) []error {
	errs := make([]error, len(ds))
	newest := map[string]domain.LastQuery{}
	var queried []int
	for i, d := range ds {
		if d.Type != eventtypes.CPFQueried {
			errs[i] = c.HandleData(ctx, d)
			continue
		}
		q, cp, err := decode(d, DecodeQueried)
		if err != nil {
			errs[i] = err
			continue
		}
		if old, ok := newest[cp]; !ok || q.QueriedAt.After(old.QueriedAt) {
			newest[cp] = q
		}
		queried = append(queried, i)
	}
	if len(queried) == 0 {
		return errs
	}
	err := c.Data.Retry(ctx, func() error { return c.Activity.RecordQueries(ctx, newest) })
	for _, i := range queried {
		errs[i] = err
	}
	if err == nil {
		c.Data.Applied(len(queried))
	}
	return errs
}

// retryable: while the store is down the message stays unacknowledged and
// is retried, rather than requeued in a tight loop towards its delivery
// limit.
func retryable(err error) bool {
	return errors.Is(err, domain.ErrUnavailable) || errors.Is(err, breaker.ErrOpen) || errors.Is(err, context.DeadlineExceeded)
}

func (c *Consumer) apply(ctx context.Context, d amqp.Delivery) error {
	switch d.Type {
	case eventtypes.CPFQueried:
		return record(ctx, d, DecodeQueried, c.Activity.RecordQuery)
	case eventtypes.CardPurchaseRecorded:
		return record(ctx, d, DecodePurchase, c.Activity.RecordPurchase)
	case eventtypes.FinancialMovementRecorded:
		var ev eventsv1.FinancialMovementRecorded
		if err := unmarshal(d, &ev); err != nil {
			return err
		}
		m, err := DecodeMovement(&ev, d.ID)
		if err != nil {
			return amqp.Permanent(err)
		}
		return c.Activity.RecordMovement(ctx, m)
	default:
		return amqp.Permanent(fmt.Errorf("unexpected event type %q", d.Type))
	}
}

// unmarshal decodes d's body into ev; a body that does not decode is
// permanent (redelivering it cannot help).
func unmarshal(d amqp.Delivery, ev proto.Message) error {
	if err := proto.Unmarshal(d.Body, ev); err != nil {
		return amqp.Permanent(fmt.Errorf("decode %s: %w", d.Type, err))
	}
	return nil
}

// decode unmarshals d's body and converts it with conv (to a value and
// its CPF); a delivery that fails either is permanent.
func decode[E any, PE interface {
	*E
	proto.Message
}, V any](d amqp.Delivery, conv func(PE) (V, string, error)) (V, string, error) {
	ev := PE(new(E))
	if err := unmarshal(d, ev); err != nil {
		var zero V
		return zero, "", err
	}
	v, cp, err := conv(ev)
	if err != nil {
		return v, cp, amqp.Permanent(err)
	}
	return v, cp, nil
}

// record decodes d with conv and records the value for its CPF with rec.
func record[E any, PE interface {
	*E
	proto.Message
}, V any](ctx context.Context, d amqp.Delivery, conv func(PE) (V, string, error), rec func(context.Context, string, V) error) error {
	v, cp, err := decode(d, conv)
	if err != nil {
		return err
	}
	return rec(ctx, cp, v)
}

func parseCPF(s string) (string, error) {
	c, err := cpf.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: cpf: %w", domain.ErrInvalid, err)
	}
	return c.String(), nil
}

func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// DecodeQueried validates a cpf.queried event.
func DecodeQueried(ev *eventsv1.CpfQueried) (domain.LastQuery, string, error) {
	cp, err := parseCPF(ev.GetCpf())
	if err != nil {
		return domain.LastQuery{}, "", err
	}
	switch ev.GetBase() {
	case "base-a", "base-b", "base-c":
	default:
		return domain.LastQuery{}, "", fmt.Errorf("%w: base must be base-a, base-b or base-c", domain.ErrInvalid)
	}
	if ev.GetQueriedAt() == nil || len(ev.GetPartnerId()) > 128 || len(ev.GetClientIp()) > 64 {
		return domain.LastQuery{}, "", fmt.Errorf("%w: queried_at required; partner_id and client_ip bounded", domain.ErrInvalid)
	}
	return domain.LastQuery{QueriedAt: ev.GetQueriedAt().AsTime().UTC(), PartnerID: ev.GetPartnerId(),
		ClientIP: ev.GetClientIp(), Base: ev.GetBase()}, cp, nil
}

// DecodePurchase validates a card.purchase.recorded event.
func DecodePurchase(ev *eventsv1.CardPurchaseRecorded) (domain.Purchase, string, error) {
	cp, err := parseCPF(ev.GetCpf())
	if err != nil {
		return domain.Purchase{}, "", err
	}
	if ev.GetAmountCents() <= 0 || !validCurrency(ev.GetCurrency()) || ev.GetOccurredAt() == nil ||
		ev.GetInstallments() < 1 || ev.GetInstallments() > 48 || strings.TrimSpace(ev.GetMerchant()) == "" || len(ev.GetMerchant()) > 200 {
		return domain.Purchase{}, "", fmt.Errorf("%w: purchase needs a positive amount, a currency, a merchant, 1-48 installments and occurred_at", domain.ErrInvalid)
	}
	return domain.Purchase{AmountCents: ev.GetAmountCents(), Currency: ev.GetCurrency(), Merchant: ev.GetMerchant(),
		Installments: ev.GetInstallments(), OccurredAt: ev.GetOccurredAt().AsTime().UTC()}, cp, nil
}

// DecodeMovement validates a financial.movement.recorded event. A movement
// without its own ID takes the message ID, so redelivery cannot add it twice.
func DecodeMovement(ev *eventsv1.FinancialMovementRecorded, messageID string) (domain.Movement, error) {
	cp, err := parseCPF(ev.GetCpf())
	if err != nil {
		return domain.Movement{}, err
	}
	dir := domain.Direction(ev.GetDirection())
	if dir != domain.Credit && dir != domain.Debit {
		return domain.Movement{}, fmt.Errorf("%w: direction must be credit or debit", domain.ErrInvalid)
	}
	if ev.GetAmountCents() <= 0 || !validCurrency(ev.GetCurrency()) || ev.GetOccurredAt() == nil || len(ev.GetDescription()) > 500 {
		return domain.Movement{}, fmt.Errorf("%w: movement needs a positive amount, a currency and occurred_at", domain.ErrInvalid)
	}
	id := ev.GetMovementId()
	if id == "" {
		id = messageID
	}
	if len(id) > 128 {
		return domain.Movement{}, fmt.Errorf("%w: movement_id too long", domain.ErrInvalid)
	}
	return domain.Movement{ID: id, CPF: cp, AmountCents: ev.GetAmountCents(), Currency: ev.GetCurrency(), Direction: dir,
		Description: ev.GetDescription(), OccurredAt: ev.GetOccurredAt().AsTime().UTC()}, nil
}

// HandleInvalidation applies a broadcast from another replica.
func (c *Consumer) HandleInvalidation(ctx context.Context, d amqp.Delivery) error {
	switch d.Type {
	case eventtypes.ActivityCacheInvalidated:
		var ev eventsv1.ActivityCacheInvalidated
		if err := unmarshal(d, &ev); err != nil {
			return err
		}
		for _, item := range ev.GetBatch() {
			if ev.GetOriginReplica() != c.ReplicaID && item.GetQueriedAt() != nil {
				c.Activity.PatchQuery(item.GetCpf(), domain.LastQuery{QueriedAt: item.GetQueriedAt().AsTime().UTC(),
					PartnerID: item.GetPartnerId(), ClientIP: item.GetClientIp(), Base: item.GetBase()})
			}
		}
		switch {
		case len(ev.GetBatch()) > 0:
		case ev.GetOriginReplica() == c.ReplicaID:
		case ev.GetQueriedAt() != nil:
			c.Activity.PatchQuery(ev.GetCpf(), domain.LastQuery{QueriedAt: ev.GetQueriedAt().AsTime().UTC(),
				PartnerID: ev.GetPartnerId(), ClientIP: ev.GetClientIp(), Base: ev.GetBase()})
		default:
			c.Activity.Refresh(ctx, ev.GetCpf())
		}
	case eventtypes.CredentialInvalidated:
		var ev eventsv1.CredentialInvalidated
		if err := unmarshal(d, &ev); err != nil {
			return err
		}
		c.Credentials.Invalidate(ev.GetUsername())
	case eventtypes.CredentialFailed:
		var ev eventsv1.CredentialFailures
		if err := unmarshal(d, &ev); err != nil {
			return err
		}
		if ev.GetOriginReplica() == c.ReplicaID {
			return nil // counted when it happened
		}
		for _, f := range ev.GetFailures() {
			c.Credentials.RecordFailure(auth.Failure{Username: f.GetUsername(), PartnerID: f.GetPartnerId(), Source: f.GetSource(), At: f.GetAt().AsTime()})
		}
	}
	return nil
}

// Broadcaster publishes invalidations to the other replicas.
type Broadcaster struct {
	Publisher *amqp.Publisher
	ReplicaID string
	Logger    *slog.Logger

	failuresOnce sync.Once
	failures     chan auth.Failure
}

// maxFailureBatch bounds one CredentialFailures message; failures waiting
// beyond failureBacklog are dropped (counted locally all the same).
const (
	maxFailureBatch = 500
	failureBacklog  = 10_000
)

func (b *Broadcaster) failureQueue() chan auth.Failure {
	b.failuresOnce.Do(func() { b.failures = make(chan auth.Failure, failureBacklog) })
	return b.failures
}

// CredentialFailed queues a wrong password this replica counted, for the
// other replicas (auth.Options.OnFailure). It never blocks: with the
// backlog full (the broker away under a flood), the failure stays counted
// here only.
func (b *Broadcaster) CredentialFailed(f auth.Failure) {
	select {
	case b.failureQueue() <- f:
	default:
	}
}

// RunCredentialFailures publishes the queued failures every every, in
// batches, until ctx ends.
func (b *Broadcaster) RunCredentialFailures(ctx context.Context, every time.Duration) error {
	return platform.Every(ctx, every, b.publishFailures)
}

// publishFailures sends every failure queued so far, in batches.
func (b *Broadcaster) publishFailures(ctx context.Context) {
	q := b.failureQueue()
	for batch := drain(q, maxFailureBatch); len(batch) > 0; batch = drain(q, maxFailureBatch) {
		ev := &eventsv1.CredentialFailures{OriginReplica: b.ReplicaID, Failures: make([]*eventsv1.CredentialFailure, len(batch))}
		for i, f := range batch {
			ev.Failures[i] = &eventsv1.CredentialFailure{Username: f.Username, PartnerId: f.PartnerID, Source: f.Source, At: timestamppb.New(f.At)}
		}
		body, _ := proto.Marshal(ev)
		_ = b.publish(ctx, eventtypes.CredentialFailed, body)
	}
}

func drain(q chan auth.Failure, n int) []auth.Failure {
	var out []auth.Failure
	for len(out) < n {
		select {
		case f := <-q:
			out = append(out, f)
		default:
			return out
		}
	}
	return out
}

// ActivityChanged tells every replica to refresh cpf. A failure is logged,
// not returned: the write itself succeeded, and other replicas' caches
// expire by refresh on their next invalidation or restart.
func (b *Broadcaster) ActivityChanged(ctx context.Context, cpf string) {
	body, _ := proto.Marshal(&eventsv1.ActivityCacheInvalidated{Cpf: cpf, OriginReplica: b.ReplicaID})
	_ = b.publish(ctx, eventtypes.ActivityCacheInvalidated, body)
}

// QueryRecorded tells every replica to patch cpf's last query in place.
func (b *Broadcaster) QueryRecorded(ctx context.Context, cpf string, q domain.LastQuery) {
	body, _ := proto.Marshal(&eventsv1.ActivityCacheInvalidated{Cpf: cpf, OriginReplica: b.ReplicaID,
		QueriedAt: timestamppb.New(q.QueriedAt), PartnerId: q.PartnerID, ClientIp: q.ClientIP, Base: q.Base})
	_ = b.publish(ctx, eventtypes.ActivityCacheInvalidated, body)
}

// QueriesRecorded tells every replica, in one message, to patch the last
// query of each CPF in qs.
func (b *Broadcaster) QueriesRecorded(ctx context.Context, qs map[string]domain.LastQuery) {
	ev := &eventsv1.ActivityCacheInvalidated{OriginReplica: b.ReplicaID, Batch: make([]*eventsv1.ActivityCacheInvalidated, 0, len(qs))}
	for cpf, q := range qs {
		ev.Batch = append(ev.Batch, &eventsv1.ActivityCacheInvalidated{Cpf: cpf,
			QueriedAt: timestamppb.New(q.QueriedAt), PartnerId: q.PartnerID, ClientIp: q.ClientIP, Base: q.Base})
	}
	body, _ := proto.Marshal(ev)
	_ = b.publish(ctx, eventtypes.ActivityCacheInvalidated, body)
}

// CredentialChanged tells every replica to drop user's cached credential.
func (b *Broadcaster) CredentialChanged(ctx context.Context, user string) error {
	body, _ := proto.Marshal(&eventsv1.CredentialInvalidated{Username: user})
	return b.publish(ctx, eventtypes.CredentialInvalidated, body)
}

func (b *Broadcaster) publish(ctx context.Context, typ string, body []byte) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := b.Publisher.Publish(pctx, amqp.Message{ID: uuid.NewString(), Type: typ, Body: body})
	if err != nil && b.Logger != nil {
		b.Logger.WarnContext(ctx, "broadcast failed", "type", typ, "err", err)
	}
	return err
}

// Queues returns the durable data queue the replicas share (dataQueue,
// normally "basec.events") and this replica's transient broadcast queue.
func Queues(dataQueue, replicaID string) (data, broadcast amqp.Queue) {
	// A generous delivery limit: undecodable messages are dead-lettered at
	// once, so redeliveries come only from crashes and restarts.
	data = amqp.Queue{Name: dataQueue, DeliveryLimit: 50, Bindings: []string{
		eventtypes.CPFQueried, eventtypes.CardPurchaseRecorded, eventtypes.FinancialMovementRecorded,
	}}
	broadcast = amqp.Queue{Name: dataQueue + ".broadcast." + replicaID, Transient: true, Bindings: []string{
		eventtypes.ActivityCacheInvalidated, eventtypes.CredentialInvalidated, eventtypes.CredentialFailed,
	}}
	return data, broadcast
}
