#!/usr/bin/env python3
"""How long the upgrade to schema version 11 (ids stored as 16-byte BLOBs) takes, and
what it leaves in the file. OLD_HOOKD (a build at schema version 10, e.g. 302282e)
creates the database; the script fills it the way version 10 stored
rows (ids as UUID text): 10 webhooks, EVENTS events, one succeeded delivery per webhook
and event with one attempt each; NEW_HOOKD's `hookd status` then upgrades it, timed.
(The old build creates the database by starting `hookd serve` on a free port, stopped
with SIGTERM once it answers.)

    python3 bench/scripts/upgrade_time.py OLD_HOOKD NEW_HOOKD [EVENTS=100000]
"""
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

old, new = sys.argv[1], sys.argv[2]
events = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
WEBHOOKS = 10

data = tempfile.mkdtemp(prefix="hookd-upgrade-")
env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
env["HOOKD_DATA_DIR"] = data
db = os.path.join(data, "hookd.db")


def status(binary):
    subprocess.run(
        [binary, "status"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def create(binary):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % port.getsockname()[1]
    port.close()
    serve = subprocess.Popen(
        [binary, "serve"],
        env=dict(env, HOOKD_LISTEN=addr, HOOKD_API_KEY="k" * 32),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://{addr}/readyz", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                serve.kill()
                sys.exit(f"{binary} serve did not become ready")
            time.sleep(0.05)
    serve.send_signal(signal.SIGTERM)
    serve.wait()


def pages(conn):
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    total = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return total * size / 1e6, (total - free) * size / 1e6


create(old)
conn = sqlite3.connect(db)
version = conn.execute("PRAGMA user_version").fetchone()[0]
if version != 10:
    sys.exit(f"{old} made a database at version {version}, not 10")
conn.execute("PRAGMA synchronous=OFF")
survey = str(uuid.uuid4())
conn.execute("INSERT INTO surveys VALUES (?, 'Survey', '[]', 1)", (survey,))
hooks = [str(uuid.uuid4()) for _ in range(WEBHOOKS)]
for hook in hooks:
    conn.execute(
        "INSERT INTO webhooks (id, survey_id, name, url, events, retry_policy, created_at, "
        "updated_at) VALUES (?, ?, 'HIS', 'https://his.example/', '[]', '[5]', 1, 1)",
        (hook, survey),
    )
for i in range(events):
    event = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO events VALUES (?, ?, 'survey.response_completed', '{\"a\":1}', ?)",
        (event, survey, i),
    )
    for hook in hooks:
        delivery = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO deliveries (id, webhook_id, event_id, survey_id, event_type, status, "
            "attempt_count, created_at, completed_at, last_attempt_at, last_status_code) "
            "VALUES (?, ?, ?, ?, 'survey.response_completed', 'succeeded', 1, ?, ?, ?, 200)",
            (delivery, hook, event, survey, i, i, i),
        )
        conn.execute(
            "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code) "
            "VALUES (?, 1, ?, 1, 200)",
            (delivery, i),
        )
conn.commit()
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
before, _ = pages(conn)
conn.close()

start = time.monotonic()
status(new)
took = time.monotonic() - start

conn = sqlite3.connect(db)
version = conn.execute("PRAGMA user_version").fetchone()[0]
after, in_use = pages(conn)
print(
    f"deliveries {events * WEBHOOKS}, version {version}: file {before:.0f} MB before, "
    f"upgrade {took:.1f} s, file {after:.0f} MB after ({in_use:.0f} MB in use)"
)
subprocess.run(["rm", "-rf", data], check=True)
