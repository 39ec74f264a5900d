#!/usr/bin/env python3
"""Times a 4 KiB write + fdatasync of a file of its own, RATE times a second for SECS
seconds, and prints each sync over 5 ms with its wall-clock time (Unix seconds), then a
summary. Run beside a bench scenario (and `perf trace -e fsync,fdatasync -p <hookd>`) to
tell the disk's stalls from hookd's: a stall of the device shows in both at once.

    python3 bench/scripts/sync_probe.py 200 80 [DIR]
"""
import os
import sys
import tempfile
import time

rate, secs = float(sys.argv[1]), float(sys.argv[2])
directory = sys.argv[3] if len(sys.argv) > 3 else "."
fd, path = tempfile.mkstemp(dir=directory, prefix="sync-probe-")
try:
    os.write(fd, b"\0" * (4096 * 1000))
    os.fsync(fd)
    started, n, times = time.time(), 0, []
    while time.time() - started < secs:
        wait = started + n / rate - time.time()
        if wait > 0:
            time.sleep(wait)
        at = time.time()
        os.pwrite(fd, b"p" * 4096, (n % 1000) * 4096)
        os.fdatasync(fd)
        took = time.time() - at
        times.append(took)
        n += 1
        if took > 0.005:
            print("slow %.3f %.1f ms" % (at, took * 1e3), flush=True)
    times.sort()
    print("syncs %d, p99 %.2f ms, max %.1f ms, over 5 ms %.3f%%" % (
        len(times), times[int(len(times) * 0.99)] * 1e3, times[-1] * 1e3,
        100 * sum(t > 0.005 for t in times) / len(times)))
finally:
    os.close(fd)
    os.unlink(path)
