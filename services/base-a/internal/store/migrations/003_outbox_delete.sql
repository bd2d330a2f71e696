-- The outbox relay deletes a row once the broker confirmed it: a
-- debt.summary.changed body carries the CPF in clear, which must not
-- outlive its delivery. Rows published before this release go now.
GRANT DELETE ON outbox TO strata_basea_app;
DELETE FROM outbox WHERE published_at IS NOT NULL;
