-- Version 1 -> 2: the deliveries status CHECK becomes plain comparisons. Written as
-- `IN ('pending', 'delivering', 'succeeded', 'failed')`, SQLite built a temporary table for
-- the list on every row inserted or updated, a fifth of the cost of writing a delivery.
--
-- SQLite cannot alter a CHECK in place, so the table is rebuilt (the procedure of SQLite's
-- ALTER TABLE documentation; the runner turns foreign keys off around it and checks them
-- before committing). Rows, ids and attempts are kept as they are.
CREATE TABLE deliveries_v2 (
    id                TEXT PRIMARY KEY,
    webhook_id        TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id          TEXT NOT NULL REFERENCES events(id),
    survey_id         TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status = 'pending' OR status = 'delivering'
                                           OR status = 'succeeded' OR status = 'failed'),
    is_test           INTEGER NOT NULL DEFAULT 0,
    attempt_count     INTEGER NOT NULL DEFAULT 0,
    schedule_base     INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    lease_expires_at  INTEGER,
    last_attempt_at   INTEGER,
    last_status_code  INTEGER,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    completed_at      INTEGER
);
INSERT INTO deliveries_v2 (id, webhook_id, event_id, survey_id, event_type, status, is_test,
    attempt_count, schedule_base, next_attempt_at, lease_expires_at, last_attempt_at,
    last_status_code, last_error, created_at, completed_at)
SELECT id, webhook_id, event_id, survey_id, event_type, status, is_test,
    attempt_count, schedule_base, next_attempt_at, lease_expires_at, last_attempt_at,
    last_status_code, last_error, created_at, completed_at
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v2 RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id, webhook_id);
CREATE INDEX deliveries_finished ON deliveries (completed_at) WHERE completed_at IS NOT NULL;
