-- The witness thins heads older than WITNESS_DENSE_FOR by received_at.
CREATE INDEX audit_witness_heads_received_at ON audit_witness_heads (received_at);
