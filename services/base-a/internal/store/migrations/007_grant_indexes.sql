-- Found by the e2e test that plans every statement the services run with
-- sequential scans disabled (deploy/local/app/explain_test.go): the data
-- subject's holdings count a CPF's grants, and verification checks the
-- grants issued since its last run; both read the whole grants table,
-- which grows with every grant.
CREATE INDEX grants_cpf_index ON grants (cpf_index);
CREATE INDEX grants_created_at ON grants (created_at);
