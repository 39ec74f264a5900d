#!/usr/bin/env bash
# Resident memory of an empty hookd once it is ready, split into anonymous memory (what
# hookd holds) and file-backed pages (of its binary, mapped as they are touched):
# `scale`'s `rss_mb_empty` is their sum.
#
#   bash bench/scripts/rss_split.sh PATH-TO-HOOKD
set -euo pipefail
hookd=$1 dir=$(mktemp -d) port=$((20000 + RANDOM % 20000))
HOOKD_LISTEN=127.0.0.1:$port HOOKD_DATA_DIR=$dir HOOKD_API_KEY=$(printf 'k%.0s' {1..32}) \
    "$hookd" serve >/dev/null 2>&1 &
pid=$!
disown "$pid"
trap 'kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 200); do curl -sf "localhost:$port/readyz" >/dev/null && break; sleep 0.05; done
sleep 1
grep -E '^(VmRSS|RssAnon|RssFile)' "/proc/$pid/status" | tr -s ' \t' ' ' | paste -sd ' '
