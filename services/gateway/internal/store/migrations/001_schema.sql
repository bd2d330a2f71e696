-- The gateway's own database: partners, their API keys (only as keyed
-- hashes), OAuth clients of the built-in issuer, and the event outbox.
CREATE TABLE partners (
  id         text PRIMARY KEY,
  name       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id           text PRIMARY KEY,          -- the key id visible in the key
  partner_id   text NOT NULL REFERENCES partners (id),
  lineage_id   text NOT NULL,             -- shared by a key and its rotations (one quota)
  secret_hash  bytea NOT NULL,            -- HMAC-SHA-256(pepper, secret)
  scopes       text[] NOT NULL,
  rate_per_sec double precision NOT NULL,
  burst        int NOT NULL,
  daily_quota  bigint NOT NULL,
  expires_at   timestamptz,
  revoked_at   timestamptz,
  last_used_at timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_partner ON api_keys (partner_id);

CREATE TABLE oauth_clients (
  id          text PRIMARY KEY,
  secret_hash bytea NOT NULL,
  scopes      text[] NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
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
