-- Version 9 -> 10: a row for the readiness probe to change, so that only a commit that
-- wrote clears a noted storage fault.
CREATE TABLE write_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at  INTEGER NOT NULL
);
INSERT INTO write_probe (id, probed_at) VALUES (1, 0);
