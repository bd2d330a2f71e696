-- The W3C trace context of the request that wrote an outbox row, so the
-- event relayed later (maybe after a broker outage) stays in its trace.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text;
