-- Daily quota usage per key lineage, shared by every gateway replica and
-- kept across restarts. Replicas add their counts about once a second.
CREATE TABLE key_usage (
  lineage_id text   NOT NULL,
  day        date   NOT NULL,
  used       bigint NOT NULL CHECK (used >= 0),
  PRIMARY KEY (lineage_id, day)
);
CREATE INDEX key_usage_day ON key_usage (day);
