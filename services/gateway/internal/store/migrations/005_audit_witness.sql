-- The gateway witnesses Base A's verifiable audit log: every signed tree
-- head Base A publishes (audit.checkpoint.signed) is kept here, outside
-- Base A's database, once it is proven consistent with the last one kept.
-- A head that is older, forked or inconsistent is kept as an alarm.
CREATE TABLE audit_witness_heads (
  size        bigint PRIMARY KEY,
  root        bytea NOT NULL,
  note        bytea NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_witness_alarms (
  id          bigserial PRIMARY KEY,
  size        bigint NOT NULL,
  problem     text NOT NULL,
  note        bytea NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
