-- Version 7 -> 8: a repair that reopens a finished delivery now takes it out of
-- finished_counts itself, as outcomes add to it, so the update trigger (whose program ran
-- for every outcome, even when it did nothing) is gone. Deletes keep their trigger.
DROP TRIGGER finished_counts_on_update;
