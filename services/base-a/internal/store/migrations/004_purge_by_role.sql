-- Audit rows are deleted only through audit_purge, and that is now checked
-- by role: the trigger lets a DELETE through only when the session logged
-- in as a direct member of strata_basea_purge (the application role, which
-- has no DELETE privilege of its own, so only audit_purge, a SECURITY
-- DEFINER function, can delete for it). No configuration parameter any
-- session can set opens the trail any more: the owner, a superuser without
-- disabling triggers, or anyone else is refused whatever they SET.
--
-- Roles are normally created by the database administrator before the
-- first migration (the owner has no CREATEROLE, so it cannot make itself a
-- member); these statements only fill in what is missing, e.g. in tests
-- where a superuser migrates.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'strata_basea_purge') THEN
    CREATE ROLE strata_basea_purge NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_auth_members m
                   JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
                  WHERE r.rolname = 'strata_basea_purge' AND u.rolname = 'strata_basea_app') THEN
    GRANT strata_basea_purge TO strata_basea_app;
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME <> 'audit_purges'
     AND EXISTS (SELECT FROM pg_catalog.pg_auth_members m
                   JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
                   JOIN pg_catalog.pg_roles u ON u.oid = m.member
                  WHERE r.rolname = 'strata_basea_purge' AND u.rolname = session_user) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit records are append-only (% on %)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
