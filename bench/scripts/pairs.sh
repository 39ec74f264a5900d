#!/usr/bin/env bash
# Alternating pairs: runs one `hookd-bench` scenario ROUNDS times against each of two hookd
# binaries, A then B in odd rounds and B then A in even ones, so that a box whose speed
# drifts (as this one's does within an hour) favours neither. Appends each report's JSON
# line, prefixed with the binary's label, to LOG; `pairs_summary.py LOG A B` reads it.
#
#   bash bench/scripts/pairs.sh SCENARIO ROUNDS A=PATH B=PATH LOG [hookd-bench options]
#   e.g. bash bench/scripts/pairs.sh ingest 8 base=/tmp/hookd-base new=target/release/hookd pairs.log
#
# Run from the repository root after `cargo build --release --workspace`. Build the other
# binary from a worktree (`git worktree add ../base REV && cargo build --release`).
set -euo pipefail
scenario=$1 rounds=$2 a=$3 b=$4 log=$5
shift 5
for round in $(seq "$rounds"); do
    if ((round % 2)); then order="$a $b"; else order="$b $a"; fi
    for side in $order; do
        label=${side%%=*} binary=${side#*=}
        target/release/hookd-bench "$scenario" --quiet --hookd "$binary" "$@" 2>&1 \
            | grep '^{' | sed "s|^|$label |" >>"$log"
    done
done
