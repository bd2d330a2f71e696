-- The outbox relay deletes a row once the broker confirmed it (a
-- cpf.queried body carries the CPF in clear). Rows published before this
-- release go now.
DELETE FROM outbox WHERE published_at IS NOT NULL;
