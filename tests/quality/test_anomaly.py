"""The online detector finds the IoT generator's labelled spikes in gold_iot_sensors_1m (real
PostgreSQL); gold rows are aggregated offline from the seeded generator, so no Spark is needed."""

from __future__ import annotations

import datetime as dt

import psycopg

from eventlake.quality.anomaly import detect, ensure_anomaly_tables, robust_score
from eventlake.quality.evaluate import OfflineGold, Window, offline_iot_gold, replay, score
from eventlake.quality.rules import load_quality
from eventlake.streaming.gold import SPECS_BY_SOURCE, ensure_gold_table
from tests.conftest import MakeSettings

START = 1_767_225_600_000
LATENESS = 120


def scorable(gold: OfflineGold, min_history: int) -> set[Window]:
    """Windows the detector can judge: enough history before them, and closed."""
    by_device: dict[str, list[dt.datetime]] = {}
    for ws, _, dev, *_ in gold.rows:
        by_device.setdefault(dev, []).append(ws)
    newest_end = max(r[1] for r in gold.rows)
    closed = newest_end - dt.timedelta(seconds=LATENESS)
    return {
        (dev, ws)
        for dev, starts in by_device.items()
        for i, ws in enumerate(sorted(starts))
        if i >= min_history and ws + dt.timedelta(minutes=1) <= closed
    }


def test_robust_score_ignores_outliers_in_history() -> None:
    history = [10.0, 10.2, 9.8, 10.1, 9.9, 500.0, 10.0, 10.05]
    expected, z = robust_score(10.1, history, 0.0)
    assert expected == 10.025 and abs(z) < 1
    _, z = robust_score(13.0, history, 0.0)
    assert z > 6


def test_detector_finds_labelled_spikes_online(make_settings: MakeSettings, fresh_db: str) -> None:
    settings = make_settings("anomaly", sources={"devices": 20})
    detectors = [d for d in load_quality(settings).detectors if d.table == "gold_iot_sensors_1m"]
    gold = offline_iot_gold(settings, seed=7, start_ms=START, rate=20, minutes=60)
    spec = SPECS_BY_SOURCE["iot_sensors"][0]
    ensure_gold_table(fresh_db, spec)
    with psycopg.connect(fresh_db) as conn:
        ensure_anomaly_tables(conn)
        found = replay(conn, gold, detectors, LATENESS).found
        # A second pass finds nothing new: each window is scored once.
        assert all(detect(conn, d, "iot_sensors", LATENESS) == [] for d in detectors)
        stored = conn.execute("SELECT series_key, window_start, detector FROM anomalies").fetchall()
    assert len(stored) == len(found)
    flagged = {(k, ws) for k, ws, _ in stored}
    truth = gold.labelled["spike"] & scorable(gold, detectors[0].min_history)
    result = score(flagged, truth)
    print(f"\nanomaly detection on IoT spikes: {result}")
    assert result.truth >= 50
    assert result.recall >= 0.9, result
    assert result.precision >= 0.9, result
    # Expected values are the series' typical level, so the score points the right way.
    assert all(a.value > a.expected for a in found if a.score > 0)
