#!/usr/bin/env bash
# What hookd's writer and delivery engine do during the `ingest` burst (one webhook,
# receiver up): starts `hookd-bench ingest`, reads hookd's /metrics twice, WINDOW seconds
# apart, early in the first variant, and prints the rates between the two readings.
#
#   bash bench/scripts/burst_metrics.sh [SIZE] [WINDOW]     (defaults: 60000 requests, 3 s)
#
# Run from the repository root after `cargo build --release --workspace`; needs curl and ss.
set -euo pipefail
size=${1:-60000}
window=${2:-3}
out=$(mktemp)
target/release/hookd-bench ingest --quiet --size "$size" >"$out" 2>&1 &
bench=$!
# The first variant's server: wait for it to listen.
for _ in $(seq 100); do
    pid=$(pgrep -n -x hookd || true)
    port=$([ -n "$pid" ] && ss -ltnpH | grep "pid=$pid," | awk '{print $4}' | sed 's/.*://' | head -1 || true)
    [ -n "${port:-}" ] && break
    sleep 0.1
done
sleep 2 # into the burst
read_metrics() {
    curl -s "localhost:$port/metrics" | grep -E '^hookd_(attempt_duration_seconds|writer_batch_jobs|writer_waiting_jobs|writer_work_seconds|writer_commit_seconds)(_sum|_count)|^hookd_deliveries_total\{outcome="succeeded"\}'
}
first=$(read_metrics)
sleep "$window"
second=$(read_metrics)
wait "$bench"
paste <(echo "$first") <(echo "$second") | awk -v w="$window" '
    { d[$1] = $4 - $2 }
    END {
        batches = d["hookd_writer_batch_jobs_count"]
        durable = d["hookd_writer_commit_seconds_count{durability=\"durable\"}"]
        sent = d["hookd_deliveries_total{outcome=\"succeeded\"}"]
        attempts = d["hookd_attempt_duration_seconds_count"]
        printf "batches/s              %.0f\n", batches / w
        printf "jobs per batch         %.1f (jobs waiting when a batch formed: %.1f)\n", d["hookd_writer_batch_jobs_sum"] / batches, d["hookd_writer_waiting_jobs_sum"] / batches
        printf "work per batch         %.2f ms\n", 1000 * d["hookd_writer_work_seconds_sum"] / batches
        printf "durable commit         %.2f ms (%d of %d batches durable)\n", 1000 * d["hookd_writer_commit_seconds_sum{durability=\"durable\"}"] / durable, durable, batches
        printf "deliveries/s           %.0f\n", sent / w
        printf "attempt, mean          %.2f ms\n", 1000 * d["hookd_attempt_duration_seconds_sum"] / attempts
        printf "attempts in flight     %.1f on average\n", d["hookd_attempt_duration_seconds_sum"] / w
    }'
grep '^{' "$out" | head -1
rm -f "$out"
