-- Version 4 -> 5: webhooks.failures_when_disabled, the failure streak at the moment hookd
-- disabled the webhook. Deliveries already in flight then still end and count, so the
-- streak can pass it; the operator views show both. Webhooks disabled before this version
-- have none recorded.
ALTER TABLE webhooks ADD COLUMN failures_when_disabled INTEGER;
