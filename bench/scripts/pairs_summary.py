#!/usr/bin/env python3
"""Summarises a log of `pairs.sh`: per variant of the scenario, each numeric figure of A's
runs and B's in round order, and the median of B/A over the pairs. For `ingest` it adds
what its figures imply: the share of acknowledgements delivered meanwhile (deliveries
received during the burst / acknowledgements) and hookd's CPU per item, in µs (hookd's CPU
over the burst / (acknowledgements + deliveries meanwhile)).

    python3 bench/scripts/pairs_summary.py LOG A B
"""
import collections
import json
import statistics
import sys

VARIANT = ("webhooks_per_survey", "receiver", "webhooks", "events_per_s", "surveys")
SKIP = set(VARIANT) | {"requests", "concurrency", "acknowledged", "errors", "load_avg_1m",
                       "warmup_events_excluded", "backlog_deliveries", "deliveries"}


def derived(report):
    if report.get("scenario") == "ingest":
        meanwhile = report["deliveries_received_meanwhile"]
        report["share_meanwhile_pct"] = 100 * meanwhile / report["acknowledged"]
        cpu_us = report["hookd_cpu_pct"] / 100 * report["seconds"] * 1e6
        report["hookd_cpu_us_per_item"] = cpu_us / (report["acknowledged"] + meanwhile)
    return report


def main():
    log, a, b = sys.argv[1:4]
    runs = collections.defaultdict(list)
    with open(log) as f:
        for line in f:
            label, text = line.split(" ", 1)
            report = derived(json.loads(text))
            variant = tuple((k, report[k]) for k in VARIANT if k in report)
            runs[(variant, label)].append(report)
    for variant in sorted({v for v, _ in runs}, key=str):
        ra, rb = runs[(variant, a)], runs[(variant, b)]
        print(" ".join(f"{k}={v}" for k, v in variant) or "(one variant)")
        for key, value in ra[0].items():
            if key in SKIP or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            xs, ys = [r[key] for r in ra], [r[key] for r in rb]
            ratios = [y / x - 1 for x, y in zip(xs, ys) if x]
            median = f"{100 * statistics.median(ratios):+.1f}%" if ratios else "-"
            print(f"  {key:32} {a}: {' · '.join(f'{x:.6g}' for x in xs)}   "
                  f"{b}: {' · '.join(f'{y:.6g}' for y in ys)}   B/A median {median}")


if __name__ == "__main__":
    main()
