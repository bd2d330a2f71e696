// Package eventtypes names the AMQP events of proto/events/v1: each name is
// both the routing key on the "strata.events" exchange and the AMQP "type"
// property. These names are part of the messaging contract.
package eventtypes

// Event names.
const (
	// CPFQueried carries events.v1.CpfQueried (gateway → base-c).
	CPFQueried = "cpf.queried"
	// CardPurchaseRecorded carries events.v1.CardPurchaseRecorded (internal producers → base-c).
	CardPurchaseRecorded = "card.purchase.recorded"
	// FinancialMovementRecorded carries events.v1.FinancialMovementRecorded (internal producers → base-c).
	FinancialMovementRecorded = "financial.movement.recorded"
	// DebtSummaryChanged carries events.v1.DebtSummaryChanged (base-a → base-b).
	DebtSummaryChanged = "debt.summary.changed"
	// ActivityCacheInvalidated carries events.v1.ActivityCacheInvalidated (base-c → base-c replicas).
	ActivityCacheInvalidated = "basec.cache.invalidated"
	// ProfileCacheInvalidated carries events.v1.ProfileCacheInvalidated (base-b → base-b replicas).
	ProfileCacheInvalidated = "baseb.cache.invalidated"
	// CredentialInvalidated carries events.v1.CredentialInvalidated (base-c → base-c replicas).
	CredentialInvalidated = "basec.credential.invalidated"
	// CredentialFailed carries events.v1.CredentialFailures (base-c → base-c replicas).
	CredentialFailed = "basec.credential.failed"
	// AuditCheckpointSigned carries events.v1.AuditCheckpointSigned (base-a → witnesses).
	AuditCheckpointSigned = "audit.checkpoint.signed"
)
