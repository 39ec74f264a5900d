-- Version 6 -> 7: the number of finished deliveries by outcome, kept by triggers in the
-- same transaction as each change, so that /metrics reads two rows instead of counting a
-- history of millions (SPEC §9). Counted once here from what is stored. A claimed delivery
-- that finishes is counted by the store itself, once per batch of outcomes; the triggers
-- count a finished delivery reopened (which always sets completed_at) or deleted.
CREATE TABLE finished_counts (
    status      TEXT PRIMARY KEY CHECK (status = 'succeeded' OR status = 'failed'),
    deliveries  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO finished_counts (status, deliveries)
    SELECT 'succeeded', count(*) FROM deliveries WHERE status = 'succeeded';
INSERT INTO finished_counts (status, deliveries)
    SELECT 'failed', count(*) FROM deliveries WHERE status = 'failed';
CREATE TRIGGER finished_counts_on_update AFTER UPDATE OF completed_at ON deliveries
    WHEN NEW.status IS NOT OLD.status AND OLD.status != 'delivering'
        AND (NEW.status = 'succeeded' OR NEW.status = 'failed'
             OR OLD.status = 'succeeded' OR OLD.status = 'failed')
BEGIN
    UPDATE finished_counts SET deliveries = deliveries + 1 WHERE status = NEW.status;
    UPDATE finished_counts SET deliveries = deliveries - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER finished_counts_on_delete AFTER DELETE ON deliveries
    WHEN OLD.status = 'succeeded' OR OLD.status = 'failed'
BEGIN
    UPDATE finished_counts SET deliveries = deliveries - 1 WHERE status = OLD.status;
END;
