#!/usr/bin/env python3
"""Counts the heap allocations hookd makes per completed response and its delivery, with
valgrind's DHAT: a count that does not move with the box's load, where CPU time does.

Runs `hookd serve` under DHAT twice, with SMALL and then LARGE completed responses to one
survey with one webhook (8 clients, a loopback receiver that answers 200 at once), waits
for every delivery, stops hookd with SIGTERM (DHAT writes its profile on exit) and prints
(allocations of LARGE - allocations of SMALL) / (LARGE - SMALL): startup and setup cancel
out. With --sites, also the allocation sites that grew most per response, by their first
frame outside the standard library and the hookd function that led there.

    python3 bench/scripts/allocations.py target/release/hookd [SMALL LARGE] [--sites]

Needs valgrind (Debian's package). Takes about a minute; the server runs some 30 times
slower under DHAT, so the figure says nothing of speed, only of allocations.
"""
import collections
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "k" * 32
CLIENTS = 8


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        with Receiver.lock:
            Receiver.received += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def call(conn, method, path, body=None):
    conn.request(method, path, body=body, headers={
        "authorization": f"Bearer {KEY}", "content-type": "application/json"})
    answer = conn.getresponse()
    return answer.status, answer.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def profile(hookd, responses, out, receiver_port):
    """Runs hookd under DHAT for `responses` submissions; the parsed DHAT profile."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="hookd-dhat-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
    env.update(HOOKD_LISTEN=f"127.0.0.1:{port}", HOOKD_DATA_DIR=data_dir, HOOKD_API_KEY=KEY,
               HOOKD_ALLOW_HTTP="true", HOOKD_ALLOW_NETWORKS="127.0.0.0/8",
               HOOKD_HOST_RATE_LIMIT="0")
    server = subprocess.Popen(
        ["valgrind", "--tool=dhat", f"--dhat-out-file={out}", hookd, "serve"], env=env,
        stdout=open(data_dir + ".log", "w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if call(conn, "GET", "/readyz")[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline or server.poll() is not None:
            sys.exit(f"hookd did not become ready; see {data_dir}.log")
        time.sleep(0.1)
    survey = json.dumps({"title": "t", "questions": [
        {"id": "stars", "type": "rating", "text": "How was your stay?", "required": True},
        {"id": "note", "type": "text", "text": "Anything else?"}]})
    status, body = call(conn, "POST", "/api/surveys", survey)
    assert status == 201, (status, body)
    survey_id = json.loads(body)["id"]
    webhook = json.dumps({"name": "HIS", "url": f"http://127.0.0.1:{receiver_port}/ok",
                          "events": ["survey.response_completed"], "isActive": True})
    status, body = call(conn, "POST", f"/api/surveys/{survey_id}/webhooks", webhook)
    assert status == 201, (status, body)
    start = Receiver.received
    each = responses // CLIENTS

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for seq in range(each):
            body = '{"answers":{"stars":{"value":5}},"metadata":{"seq":%d}}' % seq
            status, _ = call(conn, "POST", f"/api/surveys/{survey_id}/responses", body)
            assert status == 201, status

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while Receiver.received - start < each * CLIENTS:
        time.sleep(0.1)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=300)
    with open(out) as f:
        return json.load(f), each * CLIENTS


STD = re.compile(
    r"vgpreload|^(alloc|core|std)::|^<(alloc|core|std)::|^\{closure|^(call_once|do_call|"
    r"catch_unwind|map_or_else|format|with_capacity|with_capacity_in|allocate|alloc|"
    r"alloc_impl|alloc_impl_runtime|try_allocate_in|box_new_uninit|new|from|clone|to_vec|"
    r"to_owned|collect|extend|push|grow_one|reserve|finish_grow|insert|spec_extend|"
    r"from_iter|into|malloc|realloc|calloc|memalign|UnknownInlinedFun)\b")


def sites(dhat):
    frames, count = dhat["ftbl"], collections.Counter()
    for pp in dhat["pps"]:
        stack = [re.sub(r"^0x[0-9A-F]+: ", "", frames[i]) for i in pp["fs"]]
        first = next((f for f in stack if not STD.search(f)), "?")
        caller = next((f for f in stack if "hookd::" in f.split(" (")[0]), "?")
        count[(first[:110], caller[:110])] += pp["tbk"]
    return count


def main():
    args = [a for a in sys.argv[1:] if a != "--sites"]
    hookd = args[0]
    small, large = (int(args[1]), int(args[2])) if len(args) > 2 else (400, 2400)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    out = tempfile.mkdtemp(prefix="hookd-dhat-out-")
    runs = [profile(hookd, n, f"{out}/dhat-{n}.json", receiver.server_address[1])
            for n in (small, large)]
    (a, na), (b, nb) = runs
    blocks = [sum(pp["tbk"] for pp in d["pps"]) for d in (a, b)]
    octets = [sum(pp["tb"] for pp in d["pps"]) for d in (a, b)]
    items = nb - na
    print(f"allocations per completed response and its delivery: "
          f"{(blocks[1] - blocks[0]) / items:.1f} ({(octets[1] - octets[0]) / items / 1024:.1f} KiB)")
    if "--sites" in sys.argv:
        sa, sb = sites(a), sites(b)
        grown = sorted(((sb[k] - sa.get(k, 0)) / items, k) for k in sb)
        for per_item, (first, caller) in reversed(grown[-40:]):
            print(f"{per_item:6.1f}  {first}\n        <= {caller}")


if __name__ == "__main__":
    main()
