-- Every OAuth2 client id (of the built-in issuer or of an external
-- provider) is bound to exactly one partner: a token is honoured only with
-- an API key of the partner its client is bound to.
CREATE TABLE oauth_client_bindings (
  client_id  text PRIMARY KEY,
  partner_id text NOT NULL REFERENCES partners (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_client_bindings_partner ON oauth_client_bindings (partner_id);

-- Built-in clients created before bindings existed were named after their
-- partner (the bootstrap's demo client): keep them working.
INSERT INTO oauth_client_bindings (client_id, partner_id)
SELECT c.id, p.id FROM oauth_clients c JOIN partners p ON p.id = c.id
ON CONFLICT DO NOTHING;
