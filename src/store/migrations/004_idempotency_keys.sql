-- Version 3 -> 4: idempotency keys (SPEC §8), a new table; nothing else changes.
-- Idempotency keys (SPEC §8): the first answer to a POST that carried an Idempotency-Key,
-- so that a repeat is answered the same and does nothing. `scope` is whose key it is:
-- `key:<api key id>` under /api/, `token:<sha-256 of the link's token>` for /r/{token}
-- (never the token itself). `fingerprint` is the SHA-256 of the request's method, path and
-- body bytes: the same key with another request is refused. An answer to a request that
-- changed something commits in the same transaction as the change. `body` is the answer's
-- bytes (it may hold patient data); rows are answered for 24 hours after `created_at` and
-- then purged by the retention job.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   BLOB NOT NULL,
    status        INTEGER NOT NULL,
    content_type  TEXT,
    location      TEXT,
    body          BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
-- Retention: the oldest answers first.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
