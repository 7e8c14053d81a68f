"""Online anomaly detection on the gold time series: a rolling robust z-score.

For each series (e.g. one IoT device) and each window once it is **closed** (its end plus the
allowed lateness is behind the newest window end of the table, so its value is final), the
detector compares the value with the median of the series' previous ``history`` windows::

    score = (value - median) / max(1.4826 * MAD, min_scale * |median|, 1e-9)

and flags ``|score| > threshold``. Median and MAD ignore the outliers they are looking for, the
history window lets the baseline follow drift and daily cycles, and nothing is trained offline:
it learns as windows close. A series with fewer than ``min_history`` prior windows is not scored.

Runs after each gold batch, in one PostgreSQL transaction per detector: the anomalies found and
the detector's cursor (the last window scored) commit together, so a replay scores nothing twice.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from eventlake.quality.rules import Detector

DDL = """
CREATE TABLE IF NOT EXISTS anomalies (
    window_start timestamptz NOT NULL,
    source       text NOT NULL,
    series_key   text NOT NULL,
    value        double precision NOT NULL,
    expected     double precision NOT NULL,
    score        double precision NOT NULL,
    detector     text NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (detector, series_key, window_start)
);
CREATE TABLE IF NOT EXISTS anomaly_cursors (
    detector     text PRIMARY KEY,
    scored_until timestamptz NOT NULL
);
"""


@dataclass(frozen=True)
class Anomaly:
    window_start: dt.datetime
    series_key: str
    value: float
    expected: float
    score: float


def ensure_anomaly_tables(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('eventlake_anomalies'))")
    conn.execute(DDL)


def robust_score(value: float, history: list[float], min_scale: float) -> tuple[float, float]:
    """(expected, score) of ``value`` against ``history`` by median and MAD."""
    med = statistics.median(history)
    mad = statistics.median(abs(x - med) for x in history)
    scale = max(1.4826 * mad, min_scale * abs(med), 1e-9)
    return med, (value - med) / scale


def detect(conn: psycopg.Connection[Any], detector: Detector, source: str, lateness_s: int) -> list[Anomaly]:
    """Score the windows of ``detector.table`` that closed since the last call; store and return anomalies."""
    table = sql.Identifier(detector.table)
    key = sql.SQL(" || '/' || ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in detector.series)
    with conn.transaction():
        newest = conn.execute(sql.SQL("SELECT max(window_end) FROM {}").format(table)).fetchone()
        if newest is None or newest[0] is None:
            return []
        closed = newest[0] - dt.timedelta(seconds=lateness_s)
        row = conn.execute(
            "SELECT scored_until FROM anomaly_cursors WHERE detector = %s FOR UPDATE", (detector.name,)
        ).fetchone()
        since = row[0] if row else None
        span = conn.execute(sql.SQL("SELECT max(window_end - window_start) FROM {}").format(table)).fetchone()[0]  # type: ignore[index]
        lookback = (since or closed) - span * (detector.history + 1)
        rows = conn.execute(
            sql.SQL(
                "SELECT {key}, window_start, {value} FROM {t} WHERE window_end <= %s AND window_start >= %s"
                " AND {value} IS NOT NULL ORDER BY 1, 2"
            ).format(key=key, value=sql.Identifier(detector.value), t=table),
            (closed, lookback if since is not None else dt.datetime.min.replace(tzinfo=dt.UTC)),
        ).fetchall()
        found: list[Anomaly] = []
        series: dict[str, list[tuple[dt.datetime, float]]] = {}
        for k, ws, v in rows:
            series.setdefault(k, []).append((ws, float(v)))
        for k, points in series.items():
            for i, (ws, v) in enumerate(points):
                if since is not None and ws <= since:
                    continue
                history = [x for _, x in points[max(0, i - detector.history) : i]]
                if len(history) < detector.min_history:
                    continue
                expected, score = robust_score(v, history, detector.min_scale)
                if abs(score) > detector.threshold:
                    found.append(Anomaly(ws, k, v, expected, score))
        conn.cursor().executemany(
            "INSERT INTO anomalies (window_start, source, series_key, value, expected, score, detector)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(a.window_start, source, a.series_key, a.value, a.expected, a.score, detector.name) for a in found],
        )
        last = max((ws for pts in series.values() for ws, _ in pts), default=None)
        if last is not None and (since is None or last > since):
            conn.execute(
                "INSERT INTO anomaly_cursors (detector, scored_until) VALUES (%s, %s)"
                " ON CONFLICT (detector) DO UPDATE SET scored_until = excluded.scored_until",
                (detector.name, last),
            )
    return found
