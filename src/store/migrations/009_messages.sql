-- Version 8 -> 9: messages sent by email and SMS (SPEC §10) ride on the delivery queue;
-- contacts can ask not to be contacted; the admin notice recipients.
ALTER TABLE contacts ADD COLUMN do_not_contact INTEGER NOT NULL DEFAULT 0;
CREATE TABLE messages (
    id             TEXT PRIMARY KEY,
    invitation_id  TEXT REFERENCES invitations(id) ON DELETE CASCADE,
    channel        TEXT NOT NULL CHECK (channel = 'email' OR channel = 'sms'),
    kind           TEXT NOT NULL CHECK (kind = 'invitation' OR kind = 'reminder' OR kind = 'notice'),
    due_at         INTEGER NOT NULL,
    delivery_id    TEXT REFERENCES deliveries(id) ON DELETE CASCADE,
    outcome        TEXT CHECK (outcome = 'skipped' OR outcome = 'cancelled'),
    created_at     INTEGER NOT NULL
);
CREATE INDEX messages_by_invitation ON messages (invitation_id, due_at);
CREATE INDEX messages_by_delivery ON messages (delivery_id) WHERE delivery_id IS NOT NULL;
CREATE TABLE admin_recipients (
    address  TEXT PRIMARY KEY
) WITHOUT ROWID;
