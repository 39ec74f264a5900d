-- Version 10 -> 11: ids are stored as the UUID's 16 bytes (BLOB) instead of its 36
-- characters of text: every row and index that holds one shrinks, and the engine binds
-- an id without formatting it. SQLite cannot change a column's type, so each table that
-- holds ids is rebuilt as in schema.sql: create the new table, copy its rows with the ids
-- converted (`unhex(id, '-')`: the text's hex digits, hyphens skipped), drop the old
-- table, rename the new one, recreate its indexes and triggers. Foreign keys are off while
-- an upgrade runs and are checked before it commits, so a reference whose two sides were
-- not converted alike fails the upgrade. On a large store this rewrites every table once,
-- in the one transaction of the upgrade.

-- surveys
CREATE TABLE surveys_blob_ids (
    id          BLOB PRIMARY KEY,
    title       TEXT NOT NULL,
    questions   TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
INSERT INTO surveys_blob_ids (id, title, questions, created_at)
    SELECT unhex(id, '-'), title, questions, created_at FROM surveys;
DROP TABLE surveys;
ALTER TABLE surveys_blob_ids RENAME TO surveys;

-- contacts
CREATE TABLE contacts_blob_ids (
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
INSERT INTO contacts_blob_ids (id, external_id, email, email_key, phone, first_name, last_name, attributes, created_at, updated_at, do_not_contact)
    SELECT unhex(id, '-'), external_id, email, email_key, phone, first_name, last_name, attributes, created_at, updated_at, do_not_contact FROM contacts;
DROP TABLE contacts;
ALTER TABLE contacts_blob_ids RENAME TO contacts;

-- distributions
CREATE TABLE distributions_blob_ids (
    id             BLOB PRIMARY KEY,
    survey_id      BLOB NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    channel        TEXT NOT NULL,
    embedded_data  TEXT NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL
);
INSERT INTO distributions_blob_ids (id, survey_id, channel, embedded_data, created_at)
    SELECT unhex(id, '-'), unhex(survey_id, '-'), channel, embedded_data, created_at FROM distributions;
DROP TABLE distributions;
ALTER TABLE distributions_blob_ids RENAME TO distributions;

-- invitations
CREATE TABLE invitations_blob_ids (
    id               BLOB PRIMARY KEY,
    distribution_id  BLOB NOT NULL REFERENCES distributions(id) ON DELETE CASCADE,
    survey_id        BLOB NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    contact_id       BLOB NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    token_hash       TEXT NOT NULL UNIQUE,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
INSERT INTO invitations_blob_ids (id, distribution_id, survey_id, contact_id, token_hash, created_at, expires_at)
    SELECT unhex(id, '-'), unhex(distribution_id, '-'), unhex(survey_id, '-'), unhex(contact_id, '-'), token_hash, created_at, expires_at FROM invitations;
DROP TABLE invitations;
ALTER TABLE invitations_blob_ids RENAME TO invitations;
CREATE INDEX invitations_by_survey_contact ON invitations (survey_id, contact_id, created_at);

-- responses
CREATE TABLE responses_blob_ids (
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
INSERT INTO responses_blob_ids (id, survey_id, contact_id, invitation_id, status, answers, embedded_data, metadata, started_at, completed_at)
    SELECT unhex(id, '-'), unhex(survey_id, '-'), unhex(contact_id, '-'), unhex(invitation_id, '-'), status, answers, embedded_data, metadata, started_at, completed_at FROM responses;
DROP TABLE responses;
ALTER TABLE responses_blob_ids RENAME TO responses;
CREATE INDEX responses_by_survey_contact ON responses (survey_id, contact_id);

-- events
CREATE TABLE events_blob_ids (
    id          BLOB PRIMARY KEY,      -- UUID v7
    survey_id   BLOB NOT NULL,         -- no FK: an event outlives nothing it describes
    event_type  TEXT NOT NULL,
    payload     TEXT,
    created_at  INTEGER NOT NULL
);
INSERT INTO events_blob_ids (id, survey_id, event_type, payload, created_at)
    SELECT unhex(id, '-'), unhex(survey_id, '-'), event_type, payload, created_at FROM events;
DROP TABLE events;
ALTER TABLE events_blob_ids RENAME TO events;
CREATE INDEX events_by_survey_time ON events (survey_id, created_at);
CREATE INDEX events_by_time ON events (created_at);

-- webhooks
CREATE TABLE webhooks_blob_ids (
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
INSERT INTO webhooks_blob_ids (id, survey_id, name, url, events, secret, previous_secret, previous_secret_expires_at, headers, is_active, retry_policy, consecutive_failures, disabled_at, disabled_reason, created_at, updated_at, ordering, failures_when_disabled)
    SELECT unhex(id, '-'), unhex(survey_id, '-'), name, url, events, secret, previous_secret, previous_secret_expires_at, headers, is_active, retry_policy, consecutive_failures, disabled_at, disabled_reason, created_at, updated_at, ordering, failures_when_disabled FROM webhooks;
DROP TABLE webhooks;
ALTER TABLE webhooks_blob_ids RENAME TO webhooks;
CREATE INDEX webhooks_by_survey ON webhooks (survey_id, id);

-- deliveries
CREATE TABLE deliveries_blob_ids (
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
INSERT INTO deliveries_blob_ids (id, webhook_id, event_id, survey_id, event_type, status, is_test, attempt_count, schedule_base, next_attempt_at, lease_expires_at, last_attempt_at, last_status_code, last_error, created_at, completed_at, claim_token, queued_at)
    SELECT unhex(id, '-'), unhex(webhook_id, '-'), unhex(event_id, '-'), unhex(survey_id, '-'), event_type, status, is_test, attempt_count, schedule_base, next_attempt_at, lease_expires_at, last_attempt_at, last_status_code, last_error, created_at, completed_at, claim_token, queued_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_blob_ids RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id, webhook_id);
CREATE INDEX deliveries_finished ON deliveries (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX deliveries_claimed ON deliveries (webhook_id, lease_expires_at) WHERE status = 'delivering';
CREATE INDEX deliveries_fifo ON deliveries (webhook_id, queued_at)
    WHERE status = 'pending' AND queued_at IS NOT NULL;
CREATE TRIGGER finished_counts_on_delete AFTER DELETE ON deliveries
    WHEN OLD.status = 'succeeded' OR OLD.status = 'failed'
BEGIN
    UPDATE finished_counts SET deliveries = deliveries - 1 WHERE status = OLD.status;
END;

-- attempts
CREATE TABLE attempts_blob_ids (
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
INSERT INTO attempts_blob_ids (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body, response_truncated)
    SELECT unhex(delivery_id, '-'), attempt, started_at, duration_ms, status_code, error, response_body, response_truncated FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_blob_ids RENAME TO attempts;
CREATE INDEX attempts_by_time ON attempts (started_at);

-- messages
CREATE TABLE messages_blob_ids (
    id             BLOB PRIMARY KEY,   -- UUID v7, the job's delivery id
    invitation_id  BLOB REFERENCES invitations(id) ON DELETE CASCADE,   -- NULL: admin notice
    channel        TEXT NOT NULL CHECK (channel = 'email' OR channel = 'sms'),
    kind           TEXT NOT NULL CHECK (kind = 'invitation' OR kind = 'reminder' OR kind = 'notice'),
    due_at         INTEGER NOT NULL,
    delivery_id    BLOB REFERENCES deliveries(id) ON DELETE CASCADE,
    outcome        TEXT CHECK (outcome = 'skipped' OR outcome = 'cancelled'),
    created_at     INTEGER NOT NULL
);
INSERT INTO messages_blob_ids (id, invitation_id, channel, kind, due_at, delivery_id, outcome, created_at)
    SELECT unhex(id, '-'), unhex(invitation_id, '-'), channel, kind, due_at, unhex(delivery_id, '-'), outcome, created_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_blob_ids RENAME TO messages;
CREATE INDEX messages_by_invitation ON messages (invitation_id, due_at);
CREATE INDEX messages_by_delivery ON messages (delivery_id) WHERE delivery_id IS NOT NULL;

-- api_keys
CREATE TABLE api_keys_blob_ids (
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
INSERT INTO api_keys_blob_ids (id, name, key_hash, created_at, revoked_at, role, expires_at, last_used_at, expiry_recorded_at, revision)
    SELECT unhex(id, '-'), name, key_hash, created_at, revoked_at, role, expires_at, last_used_at, expiry_recorded_at, revision FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_blob_ids RENAME TO api_keys;

-- control_signals
CREATE TABLE control_signals_blob_ids (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id  BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
INSERT INTO control_signals_blob_ids (id, webhook_id, created_at)
    SELECT id, unhex(webhook_id, '-'), created_at FROM control_signals;
DROP TABLE control_signals;
ALTER TABLE control_signals_blob_ids RENAME TO control_signals;
