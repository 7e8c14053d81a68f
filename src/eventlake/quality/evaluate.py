"""Measure the anomaly detectors against the IoT generator's labels, without Kafka or Spark.

The generator labels each injected anomaly on the event (``eventlake-anomaly``). Here the same
seeded generator runs offline, its readings are aggregated per device and 1-minute window like
``gold_iot_sensors_1m``, and the windows holding a labelled ``spike`` are the ground truth.
Used by ``tests/quality`` and ``bench/quality.py``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg

from eventlake.config import Settings
from eventlake.quality.anomaly import Anomaly, detect
from eventlake.quality.rules import Detector
from eventlake.sources import make_generator

Window = tuple[str, dt.datetime]  # (device_id, window_start)
#: a gold_iot_sensors_1m row: window_start, window_end, device_id, sensor_type, readings, avg, min, max
GoldRow = tuple[dt.datetime, dt.datetime, str, str, int, float, float, float]


@dataclass
class OfflineGold:
    rows: list[GoldRow]
    #: (device, window) holding at least one labelled anomaly, per label
    labelled: dict[str, set[Window]]


def offline_iot_gold(settings: Settings, *, seed: int, start_ms: int, rate: float, minutes: int) -> OfflineGold:
    gen = make_generator(settings, "iot_sensors", seed=seed, start_ms=start_ms, rate=rate)
    values: dict[tuple[dt.datetime, str, str], list[float]] = defaultdict(list)
    labelled: dict[str, set[Window]] = defaultdict(set)
    for _ in range(int(rate * 60 * minutes)):
        event = gen.next_event()
        rec = event.value
        assert rec is not None  # the generator only yields valid records; faults are added later
        t = dt.datetime.fromtimestamp(rec["event_time"] / 1000, dt.UTC)
        ws = t.replace(second=0, microsecond=0)
        values[(ws, rec["device_id"], rec["sensor_type"])].append(rec["value"])
        if event.anomaly:
            labelled[event.anomaly].add((rec["device_id"], ws))
    rows: list[GoldRow] = [
        (ws, ws + dt.timedelta(minutes=1), dev, kind, len(v), sum(v) / len(v), min(v), max(v))
        for (ws, dev, kind), v in sorted(values.items())
    ]
    return OfflineGold(rows, dict(labelled))


@dataclass
class Replay:
    found: list[Anomaly]
    #: seconds spent in the detectors (not in the inserts)
    detect_s: float


def replay(
    conn: psycopg.Connection[Any], gold: OfflineGold, detectors: list[Detector], lateness_s: int, chunk_minutes: int = 5
) -> Replay:
    """Insert ``gold`` into ``gold_iot_sensors_1m`` a few minutes at a time, as gold batches do, and run
    the detectors after each chunk, as the gold job does."""
    minutes = sorted({r[0] for r in gold.rows})
    out = Replay([], 0.0)
    for i in range(0, len(minutes), chunk_minutes):
        chunk = set(minutes[i : i + chunk_minutes])
        conn.cursor().executemany(
            "INSERT INTO gold_iot_sensors_1m (window_start, window_end, device_id, sensor_type,"
            " readings, avg_value, min_value, max_value) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [r for r in gold.rows if r[0] in chunk],
        )
        conn.commit()
        t = time.monotonic()
        for d in detectors:
            out.found += detect(conn, d, "iot_sensors", lateness_s)
        out.detect_s += time.monotonic() - t
    return out


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    flagged: int
    truth: int

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __str__(self) -> str:
        return (
            f"precision {self.precision:.3f}  recall {self.recall:.3f}  f1 {self.f1:.3f}"
            f"  flagged {self.flagged}  labelled {self.truth}"
        )


def score(flagged: set[Window], truth: set[Window]) -> Score:
    hits = len(flagged & truth)
    return Score(
        precision=hits / len(flagged) if flagged else 0.0,
        recall=hits / len(truth) if truth else 0.0,
        flagged=len(flagged),
        truth=len(truth),
    )
