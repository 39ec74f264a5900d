#!/usr/bin/env python3
"""Pages hookd writes per commit, by B-tree: starts `HOOKD serve` on a fresh data
directory with a loopback receiver, submits N completed responses at RATE per second,
SIGKILLs it (so the WAL stays), then reads the WAL's frames commit by commit and names each
page's B-tree with SQLite's dbstat table. A commit that writes `responses` is an
acknowledgement, one that writes `attempts` an outcome, the rest are claims.

    python3 bench/scripts/wal_pages.py target/release/hookd 300 1500
"""
import collections
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

binary, rate, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
KEY = "k" * 32


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def drive(data):
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    env = dict(os.environ, HOOKD_LISTEN=f"127.0.0.1:{port}", HOOKD_DATA_DIR=data,
               HOOKD_API_KEY=KEY, HOOKD_ALLOW_HTTP="true",
               HOOKD_ALLOW_NETWORKS="127.0.0.0/8", HOOKD_HOST_RATE_LIMIT="0")
    server = subprocess.Popen([binary, "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            break
        except OSError:
            time.sleep(0.1)
    headers = {"authorization": "Bearer " + KEY, "content-type": "application/json"}

    def post(path, body):
        conn.request("POST", path, json.dumps(body), headers)
        return json.loads(conn.getresponse().read() or b"{}")

    survey = post("/api/surveys", {"title": "t", "questions": [
        {"id": "stars", "type": "rating", "text": "?", "required": True}]})["id"]
    post(f"/api/surveys/{survey}/webhooks", {
        "name": "HIS", "url": f"http://127.0.0.1:{receiver.server_port}/",
        "events": ["survey.response_completed"]})
    started = time.time()
    for i in range(n):
        due = started + i / rate
        if due > time.time():
            time.sleep(due - time.time())
        post(f"/api/surveys/{survey}/responses",
             {"answers": {"stars": {"value": 5}}, "metadata": {"seq": i}})
    time.sleep(0.5)
    server.send_signal(signal.SIGKILL)
    server.wait()


def commits(wal):
    """The page numbers each commit of the WAL wrote, oldest first (current salt only)."""
    page_size = struct.unpack(">I", wal[8:12])[0]
    salt, offset, found, current = wal[16:24], 32, [], []
    while offset + 24 + page_size <= len(wal):
        page, size_after = struct.unpack(">II", wal[offset:offset + 8])
        if wal[offset + 8:offset + 16] != salt:
            break
        current.append(page)
        if size_after:
            found.append(current)
            current = []
        offset += 24 + page_size
    return found


with tempfile.TemporaryDirectory() as data:
    drive(data)
    db = os.path.join(data, "hookd.db")
    wal = open(db + "-wal", "rb").read()
    copy = os.path.join(data, "copy.db")
    shutil.copy(db, copy)
    shutil.copy(db + "-wal", copy + "-wal")
    owner = {page: name for name, page in sqlite3.connect(copy).execute(
        "SELECT name, pageno FROM dbstat")}
    found = commits(wal)
    print("commits %d, pages %d, pages per commit %.1f" % (
        len(found), sum(map(len, found)), sum(map(len, found)) / max(1, len(found))))
    pages, count, trees = collections.Counter(), collections.Counter(), collections.Counter()
    for commit in found:
        names = [owner.get(page, "?") for page in commit]
        kind = "ack" if "responses" in names else "outcome" if "attempts" in names else "claim"
        pages[kind] += len(commit)
        count[kind] += 1
        for name in names:
            trees[(kind, name)] += 1
    for kind in count:
        print("%-8s %5d commits, %.1f pages each" % (kind, count[kind], pages[kind] / count[kind]))
    for (kind, name), c in sorted(trees.items(), key=lambda x: (x[0][0], -x[1])):
        print("  %-8s %-32s %.2f" % (kind, name, c / count[kind]))
