-- Audit retention. Entries older than the configured retention are purged,
-- but only whole chain segments that end at a signed checkpoint: the
-- checkpoint stays as the anchor the remaining chain is verified from, and
-- every purge leaves a signed record (the signing key is not in the
-- database), so a purge is provable and a deletion without one is caught.
--
-- Nobody may delete audit rows directly, the owner included: only
-- audit_purge may, and it refuses anything younger than 183 days (the law
-- asks for six months of access history), anything not ending at a
-- checkpoint, the chain head, and any range with a gap (it never hides
-- tampering behind a purge record).

CREATE TABLE audit_purges (
  through_seq bigint PRIMARY KEY,
  cutoff      timestamptz NOT NULL,
  purged_at   timestamptz NOT NULL,
  entries     bigint NOT NULL,
  signature   bytea NOT NULL
);

CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME <> 'audit_purges'
     AND current_setting('strata.audit_purge', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit records are append-only (% on %)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_purges_append_only BEFORE UPDATE OR DELETE ON audit_purges
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_purges_no_truncate BEFORE TRUNCATE ON audit_purges
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE FUNCTION audit_purge(p_through bigint, p_cutoff timestamptz, p_purged_at timestamptz, p_signature bytea)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  prev    bigint;
  present bigint;
  newest  timestamptz;
BEGIN
  IF p_cutoff > now() - interval '183 days' THEN
    RAISE EXCEPTION 'audit entries younger than 183 days cannot be purged'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT coalesce(max(through_seq), 0) INTO prev FROM audit_purges;
  IF p_through <= prev THEN
    RAISE EXCEPTION 'the audit log is already purged through entry %', prev USING ERRCODE = 'check_violation';
  END IF;
  IF NOT EXISTS (SELECT FROM audit_checkpoints WHERE seq = p_through) THEN
    RAISE EXCEPTION 'a purge must end at a signed checkpoint' USING ERRCODE = 'check_violation';
  END IF;
  IF NOT EXISTS (SELECT FROM audit_chain WHERE seq > p_through) THEN
    RAISE EXCEPTION 'the chain head cannot be purged' USING ERRCODE = 'check_violation';
  END IF;
  SELECT count(*), max(a.at) INTO present, newest
    FROM audit_chain c JOIN audit_log a ON a.id = c.audit_id
   WHERE c.seq > prev AND c.seq <= p_through;
  IF present <> p_through - prev THEN
    RAISE EXCEPTION 'entries % to % are not all present; refusing to purge', prev + 1, p_through
      USING ERRCODE = 'check_violation';
  END IF;
  IF newest >= p_cutoff THEN
    RAISE EXCEPTION 'an entry up to % is newer than the cutoff', p_through USING ERRCODE = 'check_violation';
  END IF;

  PERFORM set_config('strata.audit_purge', 'on', true);
  WITH gone AS (DELETE FROM audit_chain WHERE seq > prev AND seq <= p_through RETURNING audit_id)
  DELETE FROM audit_log WHERE id IN (SELECT audit_id FROM gone);
  DELETE FROM audit_checkpoints WHERE seq < p_through;
  -- Grants long expired carry a CPF index and a reason: they go too.
  DELETE FROM grants WHERE expires_at < p_cutoff;
  PERFORM set_config('strata.audit_purge', 'off', true);

  INSERT INTO audit_purges (through_seq, cutoff, purged_at, entries, signature)
  VALUES (p_through, p_cutoff, p_purged_at, present, p_signature);
  RETURN present;
END
$$;

REVOKE ALL ON audit_purges FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_purge(bigint, timestamptz, timestamptz, bytea) FROM PUBLIC;
GRANT SELECT ON audit_purges TO strata_basea_app;
GRANT EXECUTE ON FUNCTION audit_purge(bigint, timestamptz, timestamptz, bytea) TO strata_basea_app;
