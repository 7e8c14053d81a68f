"""Anomaly detection quality and speed on IoT spikes, against a classic z-score baseline, in one run.

The seeded IoT generator runs offline (``--devices`` devices, ``--minutes`` of simulated time at
``--rate`` ev/s); its readings are aggregated like ``gold_iot_sensors_1m`` into a real PostgreSQL
(a throw-away stack), and the shipped detectors (rolling median/MAD) score the closed windows
online, a few minutes at a time. Baseline: the same history and threshold with mean/stdev. Prints
precision/recall/F1 of both against the generator's ``spike`` labels, the F1 ratio, windows
scored per second and peak RSS.

Run: ``.venv/bin/python bench/quality.py [--devices 200] [--minutes 120] [--rate 200]``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from eventlake.config import load_settings
from eventlake.quality.anomaly import ensure_anomaly_tables
from eventlake.quality.evaluate import OfflineGold, Window, offline_iot_gold, replay, score
from eventlake.quality.rules import Detector, load_quality
from eventlake.services import Stack, endpoints
from eventlake.streaming.gold import SPECS_BY_SOURCE, ensure_gold_table

START = 1_767_225_600_000
LATENESS = 120
COLUMNS = {"max_value": 7, "min_value": 6}


def baseline(gold: OfflineGold, detectors: list[Detector]) -> set[Window]:
    """Classic z-score: (value - mean) / stdev over the same history windows."""
    flagged: set[Window] = set()
    for d in detectors:
        series: dict[str, list[tuple[object, float]]] = {}
        for row in gold.rows:
            series.setdefault(str(row[2]), []).append((row[0], float(row[COLUMNS[d.value]])))
        for key, points in series.items():
            for i, (ws, v) in enumerate(points):
                history = [x for _, x in points[max(0, i - d.history) : i]]
                if len(history) < d.min_history:
                    continue
                sd = statistics.stdev(history) or 1e-9
                if abs(v - statistics.fmean(history)) / sd > d.threshold:
                    flagged.add((key, ws))
    return flagged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--rate", type=float, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as home:
        settings = load_settings(home=Path(home), sources={"devices": args.devices})
        detectors = [d for d in load_quality(settings).detectors if d.table == "gold_iot_sensors_1m"]
        t = time.monotonic()
        gold = offline_iot_gold(settings, seed=11, start_ms=START, rate=args.rate, minutes=args.minutes)
        print(
            f"quality offline_gold {len(gold.rows)} windows from {int(args.rate * 60 * args.minutes)} events"
            f" in {time.monotonic() - t:.1f} s"
        )
        stack = Stack(settings)
        stack.up()
        try:
            url = endpoints(settings).postgres_url
            ensure_gold_table(url, SPECS_BY_SOURCE["iot_sensors"][0])
            with psycopg.connect(url) as conn:
                ensure_anomaly_tables(conn)
                run = replay(conn, gold, detectors, LATENESS)
                flagged = {(k, ws) for k, ws in conn.execute("SELECT series_key, window_start FROM anomalies")}
        finally:
            stack.down()
    truth = gold.labelled.get("spike", set())
    ours, base = score(flagged, truth), score(baseline(gold, detectors), truth)
    print(f"quality detector(median/MAD)  {ours}")
    print(f"quality baseline(mean/stdev)  {base}")
    print(
        f"quality f1_ratio {ours.f1 / base.f1 if base.f1 else float('inf'):.2f}  "
        f"windows_scored_per_s {len(gold.rows) * len(detectors) / run.detect_s:,.0f}"
    )
    for kind, windows in sorted(gold.labelled.items()):
        recall = len(flagged & windows) / len(windows)
        print(f"quality recall_by_label {kind:8s} {recall:.3f}  ({len(windows)} windows)")
    print(f"quality peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


if __name__ == "__main__":
    main()
