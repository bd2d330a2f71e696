-- Base A schema. Personal data is stored only encrypted (AES-256-GCM,
-- versioned keys held outside the database); the CPF only as a keyed HMAC
-- blind index plus its ciphertext. The application role gets the least it
-- needs; audit rows are append-only for it (grants and a trigger).

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'strata_basea_app') THEN
    CREATE ROLE strata_basea_app NOLOGIN;
  END IF;
END
$$;

CREATE TABLE people (
  cpf_index   bytea PRIMARY KEY,
  cpf_enc     bytea NOT NULL,
  name_enc    bytea NOT NULL,
  address_enc bytea NOT NULL,
  key_version int NOT NULL,
  debt_version bigint NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE debts (
  id             uuid PRIMARY KEY,
  cpf_index      bytea NOT NULL REFERENCES people (cpf_index),
  contract_index bytea NOT NULL,
  details_enc    bytea NOT NULL,
  status         text NOT NULL CHECK (status IN ('open', 'paid', 'renegotiated')),
  key_version    int NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (cpf_index, contract_index)
);

CREATE TABLE grants (
  id          uuid PRIMARY KEY,
  token_hash  bytea NOT NULL UNIQUE,
  partner_id  text NOT NULL,
  caller      text NOT NULL,
  cpf_index   bytea NOT NULL,
  purpose     text NOT NULL,
  reason      text NOT NULL,
  fields      text[] NOT NULL,
  expires_at  timestamptz NOT NULL,
  max_uses    int NOT NULL CHECK (max_uses > 0),
  uses        int NOT NULL DEFAULT 0,
  revoked_at  timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grants_expires_at ON grants (expires_at);

CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  entry_id    uuid NOT NULL UNIQUE,
  at          timestamptz NOT NULL,
  partner_id  text NOT NULL,
  caller      text NOT NULL,
  cpf_index   bytea,
  cpf_enc     bytea,
  purpose     text NOT NULL,
  reason      text NOT NULL,
  fields      text[] NOT NULL,
  outcome     text NOT NULL,
  client_ip   text NOT NULL,
  trace_id    text NOT NULL,
  grant_id    uuid
);
CREATE INDEX audit_log_cpf_at ON audit_log (cpf_index, at);
CREATE INDEX audit_log_partner_at ON audit_log (partner_id, at);
CREATE INDEX audit_log_at ON audit_log (at);

-- The hash chain is a separate insert-only table, so entries are never
-- updated: seq orders entries as the chainer saw them commit.
CREATE TABLE audit_chain (
  seq        bigint PRIMARY KEY,
  audit_id   bigint NOT NULL UNIQUE REFERENCES audit_log (id),
  hash       bytea NOT NULL,
  chained_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_checkpoints (
  seq        bigint PRIMARY KEY,
  hash       bytea NOT NULL,
  signed_at  timestamptz NOT NULL,
  signature  bytea NOT NULL
);

CREATE TABLE outbox (
  id           bigserial PRIMARY KEY,
  message_id   uuid NOT NULL UNIQUE,
  type         text NOT NULL,
  body         bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Append-only audit trail: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit records are append-only (% on %)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO strata_basea_app;
GRANT SELECT, INSERT, UPDATE ON people, debts, grants TO strata_basea_app;
GRANT SELECT, INSERT ON audit_log, audit_chain, audit_checkpoints TO strata_basea_app;
GRANT SELECT, INSERT, UPDATE ON outbox TO strata_basea_app;
GRANT USAGE ON SEQUENCE audit_log_id_seq, outbox_id_seq TO strata_basea_app;
