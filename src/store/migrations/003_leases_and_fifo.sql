-- Schema version 3: claims as leases with a token, FIFO webhooks.
--
-- * webhooks.ordering: 'concurrent' (up to HOOKD_MAX_IN_FLIGHT at once) or 'fifo' (one
--   at a time, in the order the events were stored).
-- * deliveries.claim_token: set by each claim; an attempt's outcome is recorded only
--   while the claim it was made under still holds, so a stale outcome never lands on a
--   newer claim.
-- * deliveries.queued_at: a FIFO webhook's queue order (NULL for concurrent webhooks).
-- * deliveries_claimed: claims by lease, to find the ones past it without a scan.
-- * deliveries_fifo: a FIFO webhook's queue head, oldest first.
ALTER TABLE webhooks ADD COLUMN ordering TEXT NOT NULL DEFAULT 'concurrent'
    CHECK (ordering = 'concurrent' OR ordering = 'fifo');
ALTER TABLE deliveries ADD COLUMN claim_token INTEGER;
ALTER TABLE deliveries ADD COLUMN queued_at INTEGER;
CREATE INDEX deliveries_claimed ON deliveries (webhook_id, lease_expires_at) WHERE status = 'delivering';
CREATE INDEX deliveries_fifo ON deliveries (webhook_id, queued_at)
    WHERE status = 'pending' AND queued_at IS NOT NULL;
