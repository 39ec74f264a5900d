#!/usr/bin/env python3
"""Times the writer's delivery work against two layouts of the `deliveries` table: as in
schema.sql (a rowid table with its id in a unique index) and WITHOUT ROWID (clustered on
the id, one B-tree fewer). It writes EVENTS events with a delivery to each of WEBHOOKS
webhooks in commits of 50 events, then claims and records them 32 at a time, and prints
the CPU time per delivery of each part and the file's size; the two layouts alternate,
RUNS times each. The README's performance section quotes it.

    python3 bench/scripts/deliveries_without_rowid.py 10 3000 5 [DIR]
"""
import json
import os
import random
import sqlite3
import sys
import time
import uuid

SCHEMA = """
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, event_id TEXT NOT NULL,
    survey_id TEXT NOT NULL, event_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status = 'pending' OR status = 'delivering'
                                OR status = 'succeeded' OR status = 'failed'),
    is_test INTEGER NOT NULL DEFAULT 0, attempt_count INTEGER NOT NULL DEFAULT 0,
    schedule_base INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER,
    lease_expires_at INTEGER, last_attempt_at INTEGER, last_status_code INTEGER,
    last_error TEXT, created_at INTEGER NOT NULL, completed_at INTEGER,
    claim_token INTEGER, queued_at INTEGER
){layout};
CREATE INDEX deliveries_due ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id, webhook_id);
CREATE INDEX deliveries_finished ON deliveries (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX deliveries_claimed ON deliveries (webhook_id, lease_expires_at) WHERE status = 'delivering';
CREATE TABLE events (id TEXT PRIMARY KEY, survey_id TEXT NOT NULL, event_type TEXT NOT NULL,
                     payload TEXT, created_at INTEGER NOT NULL);
CREATE INDEX events_by_survey_time ON events (survey_id, created_at);
CREATE INDEX events_by_time ON events (created_at);
"""
EVENT_TYPE = "survey.response_completed"
PER_COMMIT, PER_CLAIM = 50, 32


def uuid7():
    """A UUID v7 as text: milliseconds first, so ids sort in creation order (as hookd's)."""
    ms, rand = time.time_ns() // 1_000_000, random.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def run(without_rowid, webhooks, events, path):
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name):
            os.remove(name)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # CPU, not the disk
    conn.executescript(SCHEMA.format(layout=" WITHOUT ROWID" if without_rowid else ""))
    hooks, survey = [uuid7() for _ in range(webhooks)], uuid7()
    payload = json.dumps({"answers": {f"q{i}": "x" * 20 for i in range(20)}})
    ids = sorted((uuid7() for _ in range(events * webhooks)), reverse=True)

    inserting = 0.0
    for _ in range(events // PER_COMMIT):
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(PER_COMMIT):
            now, event = time.time_ns() // 1_000_000, uuid7()
            conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                         (event, survey, EVENT_TYPE, payload, now))
            rows = [(ids.pop(), hook, event, survey, EVENT_TYPE, now, now) for hook in hooks]
            started = time.process_time()
            conn.executemany(
                "INSERT INTO deliveries (id, webhook_id, event_id, survey_id, event_type, "
                "status, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                rows)
            inserting += time.process_time() - started
        conn.execute("COMMIT")

    started, done = time.process_time(), 0
    for round_ in range(events * webhooks // PER_CLAIM):
        hook = hooks[round_ % webhooks]
        conn.execute("BEGIN IMMEDIATE")
        claimed = [row[0] for row in conn.execute(
            "SELECT id FROM deliveries WHERE webhook_id = ? AND status = 'pending' "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
            (hook, 1 << 60, PER_CLAIM))]
        for delivery in claimed:
            conn.execute("UPDATE deliveries SET status = 'delivering', lease_expires_at = 1, "
                         "claim_token = 1 WHERE id = ?", (delivery,))
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        for delivery in claimed:
            conn.execute("UPDATE deliveries SET status = 'succeeded', completed_at = 2, "
                         "attempt_count = 1, lease_expires_at = NULL, claim_token = NULL "
                         "WHERE id = ? AND claim_token = 1", (delivery,))
        conn.execute("COMMIT")
        done += len(claimed)
    claiming = time.process_time() - started
    size = os.path.getsize(path) + os.path.getsize(path + "-wal")
    conn.close()
    return inserting / (events * webhooks), claiming / max(done, 1), size


webhooks, events, runs = (int(arg) for arg in sys.argv[1:4])
directory = sys.argv[4] if len(sys.argv) > 4 else "/dev/shm"
for _ in range(runs):
    for without_rowid in (False, True):
        insert, claim, size = run(without_rowid, webhooks, events,
                                  os.path.join(directory, "deliveries-layout.db"))
        print(f"{'without rowid' if without_rowid else 'rowid (hookd)'}: insert "
              f"{insert * 1e6:.1f} us, claim + record {claim * 1e6:.1f} us per delivery, "
              f"file {size / 1e6:.1f} MB", flush=True)
