-- Version 5 -> 6: API keys get a role (SPEC §9), an optional expiry and the time they
-- were last used. Keys stored before roles existed keep doing everything: `admin`.
-- `revision` counts changes a running server must pick up (revocation, a new role);
-- `expiry_recorded_at` is when the audit log noted that the key expired.
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
    CHECK (role IN ('admin', 'integration', 'kiosk', 'viewer'));
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN expiry_recorded_at INTEGER;
ALTER TABLE api_keys ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
