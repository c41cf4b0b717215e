-- Idempotency keys where there is no Redis (the single server): a repeated
-- write's first answer, for a day. `response` is null while the first request
-- runs; `locked_until` is its lease (a process that died holding it).
CREATE TABLE idempotency_keys (
  key text PRIMARY KEY,
  fingerprint text NOT NULL,
  response jsonb,
  locked_until timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- An upload's key, on the photo it made, in the same transaction: a retry after
-- its web server died between the commit and the answer finds the photo.
ALTER TABLE photos ADD COLUMN request_key text;
CREATE UNIQUE INDEX photos_owner_request_key ON photos (owner_id, request_key) WHERE request_key IS NOT NULL;
