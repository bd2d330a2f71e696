-- The verifiable log (certificate-transparency style): entry seq n is leaf
-- n-1 of a Merkle tree whose hashes are stored, insert-only, at the dense
-- indexes of golang.org/x/mod/sumdb/tlog; tree heads are signed notes.
-- The HMAC chain stays: it orders entries (seq) and keeps proving what it
-- proved; the tree is built over the same order, existing entries first
-- (the chainer migrates them in batches on start).
CREATE TABLE audit_tree (
  idx  bigint PRIMARY KEY,  -- tlog.StoredHashIndex
  seq  bigint NOT NULL,     -- the entry whose append stored this hash
  hash bytea NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE audit_heads (
  size      bigint PRIMARY KEY,
  root      bytea NOT NULL CHECK (length(root) = 32),
  signed_at timestamptz NOT NULL,
  note      bytea NOT NULL
);

-- Base A's own verifier state (incremental verification); a convenience,
-- not a trust anchor: witnesses outside the database are.
CREATE TABLE audit_verified (
  id         int PRIMARY KEY CHECK (id = 1),
  size       bigint NOT NULL,
  root       bytea NOT NULL,
  edge       jsonb NOT NULL,
  chain_hash bytea NOT NULL,
  grants_at  timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_grant ON audit_log (grant_id) WHERE grant_id IS NOT NULL;

CREATE TRIGGER audit_tree_append_only BEFORE UPDATE OR DELETE ON audit_tree
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_tree_no_truncate BEFORE TRUNCATE ON audit_tree
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_heads_append_only BEFORE UPDATE OR DELETE ON audit_heads
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

REVOKE ALL ON audit_tree, audit_heads, audit_verified FROM PUBLIC;
GRANT SELECT, INSERT ON audit_tree, audit_heads TO strata_basea_app;
GRANT SELECT, INSERT, UPDATE ON audit_verified TO strata_basea_app;
