-- hookd schema, version 11.
--
-- This file is the current schema: a new database is created from it by
-- `src/store/migrate.rs`, which records its version in `PRAGMA user_version`. A database
-- of an older version is brought up to date by the numbered upgrades in
-- `src/store/migrations/`; a change to this file comes with such an upgrade.
--
-- Conventions:
-- * ids are UUIDs stored as their 16 bytes, BLOB (v7 where rows are listed by age: their
--   bytes sort by creation time, so id order is creation order); the API writes them as
--   text, and `hex(id)` shows one in the sqlite3 shell;
-- * times are INTEGER milliseconds since the Unix epoch, UTC (the API formats them);
-- * JSON documents are TEXT written by hookd itself (serde_json), never parsed by SQL.
--
-- Connection settings (WAL, synchronous=FULL, foreign_keys=ON, busy_timeout) are set on every
-- connection by the store, not here: they are per-connection in SQLite.

-- Surveys: the questionnaire a patient answers. `questions` is the validated JSON array of
-- questions ({id, type, text, required, choices}); answers are checked against it.
CREATE TABLE surveys (
    id          BLOB PRIMARY KEY,
    title       TEXT NOT NULL,
    questions   TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Contacts: the clinic's directory of patients to invite. Matching on upsert is by
-- external_id, else email (stored lower-cased in email_key), else phone.
CREATE TABLE contacts (
    id           BLOB PRIMARY KEY,
    external_id  TEXT UNIQUE,
    email        TEXT,
    email_key    TEXT UNIQUE,          -- lower(email): case-insensitive matching
    phone        TEXT UNIQUE,
    first_name   TEXT,
    last_name    TEXT,
    attributes   TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    do_not_contact INTEGER NOT NULL DEFAULT 0   -- invited, but never sent a message (SPEC §10)
);

-- Distributions: one quick send of a survey to a set of contacts.
CREATE TABLE distributions (
    id             BLOB PRIMARY KEY,
    survey_id      BLOB NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    channel        TEXT NOT NULL,
    embedded_data  TEXT NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL
);

-- Invitations: one per contact and distribution. The token is the respondent's only
-- credential, so only its SHA-256 is stored (token_hash), like API keys.
CREATE TABLE invitations (
    id               BLOB PRIMARY KEY,
    distribution_id  BLOB NOT NULL REFERENCES distributions(id) ON DELETE CASCADE,
    survey_id        BLOB NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    contact_id       BLOB NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    token_hash       TEXT NOT NULL UNIQUE,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
-- Bulk status: the latest invitation of a contact to a survey.
CREATE INDEX invitations_by_survey_contact ON invitations (survey_id, contact_id, created_at);

-- Responses: a patient's answers, partial (`started`) or `completed`. A response completes
-- once; the event it emits is written in the same transaction.
CREATE TABLE responses (
    id             BLOB PRIMARY KEY,
    survey_id      BLOB NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    contact_id     BLOB REFERENCES contacts(id) ON DELETE SET NULL,
    invitation_id  BLOB UNIQUE REFERENCES invitations(id) ON DELETE SET NULL,
    status         TEXT NOT NULL CHECK (status IN ('started', 'completed')),
    answers        TEXT NOT NULL DEFAULT '{}',
    embedded_data  TEXT NOT NULL DEFAULT '{}',
    metadata       TEXT NOT NULL DEFAULT '{}',
    started_at     INTEGER NOT NULL,
    completed_at   INTEGER
);
CREATE INDEX responses_by_survey_contact ON responses (survey_id, contact_id);

-- Events: something that happened, stored once with the exact bytes every delivery sends.
-- Retention deletes an event with its last finished delivery, so payload is never NULL in
-- practice; the column stays nullable as released.
CREATE TABLE events (
    id          BLOB PRIMARY KEY,      -- UUID v7
    survey_id   BLOB NOT NULL,         -- no FK: an event outlives nothing it describes
    event_type  TEXT NOT NULL,
    payload     TEXT,
    created_at  INTEGER NOT NULL
);
-- Replay: the events of a survey since a time.
CREATE INDEX events_by_survey_time ON events (survey_id, created_at);
-- Retention: the oldest events first.
CREATE INDEX events_by_time ON events (created_at);

-- Webhooks: registered endpoints of a survey.
-- `secret` is the signing secret as configured; `previous_secret` keeps signing beside it
-- until `previous_secret_expires_at` (24 h after a change) so receivers can rotate.
-- `previous_secret_expires_at` is worked out at the change from HOOKD_SECRET_OVERLAP_SECONDS;
-- signing compares it with the clock at send time, so the old secret stops on time.
-- `consecutive_failures` counts deliveries that ended `failed` since the last success;
-- reaching the configured limit (or a 410 answer) sets is_active = 0, disabled_at and
-- disabled_reason: disabled by hookd, it keeps collecting deliveries, paused. An operator's
-- `isActive: false` clears disabled_reason: switched off, it collects none.
-- `failures_when_disabled` is the streak when hookd disabled it: deliveries in flight then
-- still end, and a failure among them still counts, so the streak can pass the limit.
-- `ordering`: 'concurrent' (up to HOOKD_MAX_IN_FLIGHT attempts at once, no order promised)
-- or 'fifo' (one attempt at a time, in queue order: deliveries.queued_at).
CREATE TABLE webhooks (
    id                         BLOB PRIMARY KEY,   -- UUID v7
    survey_id                  BLOB NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    name                       TEXT NOT NULL,
    url                        TEXT NOT NULL,
    events                     TEXT NOT NULL,      -- JSON array of event type names
    secret                     TEXT,
    previous_secret            TEXT,
    previous_secret_expires_at INTEGER,
    headers                    TEXT NOT NULL DEFAULT '{}',  -- JSON object name -> value
    is_active                  INTEGER NOT NULL DEFAULT 1,
    retry_policy               TEXT NOT NULL,      -- JSON array of delays in seconds
    consecutive_failures       INTEGER NOT NULL DEFAULT 0,
    disabled_at                INTEGER,
    disabled_reason            TEXT,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL,
    ordering                   TEXT NOT NULL DEFAULT 'concurrent'
                               CHECK (ordering = 'concurrent' OR ordering = 'fifo'),
    failures_when_disabled     INTEGER             -- set with disabled_at, cleared with it
);
CREATE INDEX webhooks_by_survey ON webhooks (survey_id, id);

-- Deliveries: one event owed to one webhook, with its schedule.
--   pending    -> waiting for next_attempt_at (or paused while the webhook is inactive)
--   delivering -> claimed by the webhook's delivery actor under a lease: lease_expires_at
--                 bounds the claim (a claim past it is released and attempted again) and
--                 claim_token names it (an outcome is recorded only under its own claim)
--   succeeded / failed -> finished (completed_at set); retention purges them later.
-- `schedule_base` is the attempt_count at which the current retry schedule started: a
-- manual retry or a replay starts a fresh schedule without forgetting earlier attempts.
CREATE TABLE deliveries (
    id                BLOB PRIMARY KEY,    -- UUID v7: id order is creation order
    webhook_id        BLOB NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id          BLOB NOT NULL REFERENCES events(id),
    survey_id         BLOB NOT NULL,
    event_type        TEXT NOT NULL,
    -- Comparisons, not `IN (...)`: SQLite checks an IN list of more than two values by
    -- building a temporary table for every row written (a fifth of an insert's cost).
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
    completed_at      INTEGER,
    claim_token       INTEGER,
    -- A FIFO webhook's queue order: the event's time when queued, the time of a manual retry
    -- or replay (which go to the back). NULL for concurrent webhooks, whose deliveries then
    -- cost the FIFO index nothing.
    queued_at         INTEGER
);
-- The engine's hot query: "the due deliveries of webhook W, oldest first". Partial: only
-- pending rows are indexed, so finished deliveries cost it nothing and a claim removes one
-- entry instead of rewriting it.
CREATE INDEX deliveries_due ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
-- The API's list: a webhook's deliveries, newest first (cursor = id).
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
-- Replay ("has this event a delivery to webhook W?") and retention (events still needed).
CREATE INDEX deliveries_by_event ON deliveries (event_id, webhook_id);
-- Retention: finished deliveries by age. Partial: unfinished ones are never in it.
CREATE INDEX deliveries_finished ON deliveries (completed_at) WHERE completed_at IS NOT NULL;

-- Claims: a webhook's (FIFO holds back while one is out) and the ones past their lease,
-- found without a scan of the table.
CREATE INDEX deliveries_claimed ON deliveries (webhook_id, lease_expires_at) WHERE status = 'delivering';
-- A FIFO webhook's queue, head first.
CREATE INDEX deliveries_fifo ON deliveries (webhook_id, queued_at)
    WHERE status = 'pending' AND queued_at IS NOT NULL;

-- Attempts: one HTTP try of a delivery. `response_body` keeps at most 4,096 bytes.
CREATE TABLE attempts (
    delivery_id         BLOB NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt             INTEGER NOT NULL,   -- 1-based
    started_at          INTEGER NOT NULL,
    duration_ms         INTEGER NOT NULL,
    status_code         INTEGER,
    error               TEXT,
    response_body       TEXT,
    response_truncated  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
-- The operator page's chart: the attempts of the last hour, minute by minute.
CREATE INDEX attempts_by_time ON attempts (started_at);

-- Finished deliveries by outcome, kept in the same transaction as each change, so that
-- /metrics reads two rows instead of counting a history of millions. The store counts
-- the deliveries that finish (once per batch of outcomes: the engine's hot path runs no
-- trigger) and those a repair reopens (`store::deliveries::Finished`); the trigger below
-- counts deletes (retention, a webhook's deletion). Deliveries are never inserted
-- finished. Unfinished deliveries are counted from their partial indexes, which hold only
-- the backlog.
CREATE TABLE finished_counts (
    status      TEXT PRIMARY KEY CHECK (status = 'succeeded' OR status = 'failed'),
    deliveries  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO finished_counts (status, deliveries) VALUES ('succeeded', 0), ('failed', 0);
CREATE TRIGGER finished_counts_on_delete AFTER DELETE ON deliveries
    WHEN OLD.status = 'succeeded' OR OLD.status = 'failed'
BEGIN
    UPDATE finished_counts SET deliveries = deliveries - 1 WHERE status = OLD.status;
END;

-- Messages (SPEC §10): the emails and SMS hookd sends — invitations, reminders and admin
-- notices. A message that is sent rides on the delivery queue above, like a webhook
-- event: its job is the delivery of the same id, owed to the reserved queue of its channel
-- (`WebhookId::EMAIL` or `WebhookId::SMS`), whose event holds the filled-in message. So
-- messages are claimed, leased, recorded, retried and counted by the one engine, and
-- `delivery_id` (set while the job exists) gives their state: pending or delivering is
-- `queued`, succeeded is `sent`, failed is `failed`. `outcome` is set instead for a
-- message that never goes out: `skipped` (the contact has doNotContact) or `cancelled` (a
-- reminder whose invitation was completed or had expired). Retention purges a finished
-- job, and the message row with it (ON DELETE CASCADE).
CREATE TABLE messages (
    id             BLOB PRIMARY KEY,   -- UUID v7, the job's delivery id
    invitation_id  BLOB REFERENCES invitations(id) ON DELETE CASCADE,   -- NULL: admin notice
    channel        TEXT NOT NULL CHECK (channel = 'email' OR channel = 'sms'),
    kind           TEXT NOT NULL CHECK (kind = 'invitation' OR kind = 'reminder' OR kind = 'notice'),
    due_at         INTEGER NOT NULL,
    delivery_id    BLOB REFERENCES deliveries(id) ON DELETE CASCADE,
    outcome        TEXT CHECK (outcome = 'skipped' OR outcome = 'cancelled'),
    created_at     INTEGER NOT NULL
);
-- A distribution's status, and the reminders a completion cancels.
CREATE INDEX messages_by_invitation ON messages (invitation_id, due_at);
-- The cascade from a purged job (without it every delete of a delivery scans messages).
CREATE INDEX messages_by_delivery ON messages (delivery_id) WHERE delivery_id IS NOT NULL;

-- The addresses told by email when a webhook is disabled (HOOKD_ADMIN_EMAIL), written at
-- each start: the store queues those notices from deep inside a record.
CREATE TABLE admin_recipients (
    address  TEXT PRIMARY KEY
) WITHOUT ROWID;

-- API keys: only the SHA-256 of a key is stored. Keys are 256-bit random strings, so a
-- fast hash is the right tool (no password stretching needed). `role` is what the key may
-- do (SPEC §9). `last_used_at` is written at most once a minute per key. `revision` counts
-- the changes a running server must pick up (revocation, a new role); the audit log notes
-- an expiry once, at `expiry_recorded_at`.
CREATE TABLE api_keys (
    id                  BLOB PRIMARY KEY,
    name                TEXT NOT NULL,
    key_hash            TEXT NOT NULL UNIQUE,
    created_at          INTEGER NOT NULL,
    revoked_at          INTEGER,
    role                TEXT NOT NULL DEFAULT 'admin'
                        CHECK (role IN ('admin', 'integration', 'kiosk', 'viewer')),
    expires_at          INTEGER,
    last_used_at        INTEGER,
    expiry_recorded_at  INTEGER,
    revision            INTEGER NOT NULL DEFAULT 0
);

-- Audit log: every admin action, with the key that did it ("env" for HOOKD_API_KEY,
-- "cli" for the local command line). `detail` never holds a secret, payload or answer.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    key_id       TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_time ON audit_log (at);

-- Control signals: changes made by the `hookd` command line while a server may be running
-- (retry, enable). The server polls this table and wakes the webhook's actor, so CLI
-- repairs take effect at once; with the server stopped they apply at its next start.
CREATE TABLE control_signals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id  BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

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

-- The readiness probe's row (SPEC §8): while a write has failed for want of disk,
-- `/readyz` rewrites `probed_at` to see whether the disk takes writes again. A commit that
-- changed no row proves nothing (it needs no space), so the probe changes one.
CREATE TABLE write_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at  INTEGER NOT NULL
);
INSERT INTO write_probe (id, probed_at) VALUES (1, 0);
