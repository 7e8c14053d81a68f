"""Per-batch data-quality results in PostgreSQL, applied once per (source, batch id).

:func:`record_batch` runs in one transaction: a ``dq_batches`` row guards it (a replayed batch
changes nothing), then the ``dq_metrics`` rows, the state of the stateful rules (``volume``
window counts, ``schema_drift``'s seen schema ids and fields) and the alert observations, so
alerts and their notifications are decided exactly once per batch too.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from eventlake import pg
from eventlake.alerting.store import Observation, ensure_alert_tables, observe
from eventlake.config import Settings
from eventlake.quality.anomaly import ensure_anomaly_tables
from eventlake.quality.rules import SchemaDrift, SourceRules, Volume

log = logging.getLogger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS dq_batches (
    source   text NOT NULL,
    batch_id bigint NOT NULL,
    ts       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, batch_id)
);
CREATE TABLE IF NOT EXISTS dq_metrics (
    ts       timestamptz NOT NULL,
    source   text NOT NULL,
    rule     text NOT NULL,
    checked  bigint NOT NULL,
    failed   bigint NOT NULL,
    batch_id bigint NOT NULL,
    severity text NOT NULL,
    PRIMARY KEY (source, rule, batch_id)
);
CREATE INDEX IF NOT EXISTS dq_metrics_ts ON dq_metrics (ts);
CREATE TABLE IF NOT EXISTS dq_volume (
    source       text NOT NULL,
    rule         text NOT NULL,
    window_start timestamptz NOT NULL,
    events       bigint NOT NULL,
    evaluated    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (source, rule, window_start)
);
CREATE TABLE IF NOT EXISTS dq_seen (
    source   text NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('schema_id', 'field')),
    name     text NOT NULL,
    batch_id bigint NOT NULL,
    PRIMARY KEY (source, kind, name)
);
"""

#: Built-in checks of silver itself (not in the rules file), always critical.
DECODE, FUTURE, LATE = "decode", "future", "late"


def ensure_quality_tables(url: str) -> None:
    with pg.connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('eventlake_dq'))")
        conn.execute(DDL)
        ensure_alert_tables(conn)
        ensure_anomaly_tables(conn)


@dataclass(frozen=True)
class Metric:
    rule: str
    checked: int
    failed: int
    detail: str = ""


@dataclass(frozen=True)
class StoredMetric:
    """A ``dq_metrics`` row of one batch."""

    ts: dt.datetime
    rule: str
    checked: int
    failed: int
    severity: str


#: Delta ``quality/metrics``: the same columns as PostgreSQL ``dq_metrics``
METRICS_SCHEMA = "ts timestamp, source string, rule string, checked long, failed long, batch_id long, severity string"


def stored_rows(url: str, source: str, after: int | None, through: int) -> list[tuple[Any, ...]]:
    """The ``dq_metrics`` rows of ``source``'s batches in (``after``, ``through``] (None: ``through``
    only), in the columns of :data:`METRICS_SCHEMA`: what Delta ``quality/metrics`` gets a copy of."""
    with pg.connect(url) as conn:
        return conn.execute(
            "SELECT ts, source, rule, checked, failed, batch_id, severity FROM dq_metrics"
            " WHERE source = %s AND batch_id > %s AND batch_id <= %s ORDER BY batch_id, rule",
            (source, through - 1 if after is None else after, through),
        ).fetchall()


@dataclass
class BatchFacts:
    """What the silver batch measured, beyond the per-rule counts."""

    metrics: list[Metric]
    #: valid events per volume-window start
    windows: dict[dt.datetime, int]
    #: newest valid event time of this source so far (this batch included); None: none yet
    watermark: dt.datetime | None
    schema_ids: list[int]
    #: optional field -> non-null count among this batch's valid rows
    non_null: dict[str, int]
    valid: int


def alert_key(source: str, rule: str) -> str:
    return f"dq:{source}:{rule}"


def record_batch(
    url: str, settings: Settings, rules: SourceRules, batch_id: int, facts: BatchFacts
) -> list[StoredMetric]:
    """Store one batch's metrics and apply its alert observations, once; returns the batch's stored metrics
    (a replayed batch changes nothing and gets the rows of its first run)."""
    now = dt.datetime.now(dt.UTC)
    source = rules.source
    with pg.connect(url) as conn, conn.transaction():
        first = conn.execute(
            "INSERT INTO dq_batches (source, batch_id) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (source, batch_id),
        ).fetchone()
        if first is None:
            rows = conn.execute(
                "SELECT ts, rule, checked, failed, severity FROM dq_metrics WHERE source = %s AND batch_id = %s",
                (source, batch_id),
            ).fetchall()
            return [StoredMetric(*r) for r in rows]
        metrics = list(facts.metrics)
        for rule in rules.of_type("volume"):
            metrics.append(_volume(conn, source, rule, facts, settings.streaming.allowed_lateness_s))
        for rule in rules.of_type("schema_drift"):
            metrics.append(_drift(conn, rule, source=source, batch_id=batch_id, facts=facts))
        conn.cursor().executemany(
            "INSERT INTO dq_metrics (ts, source, rule, checked, failed, batch_id, severity)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(now, source, m.rule, m.checked, m.failed, batch_id, rules.severity(m.rule)) for m in metrics],
        )
        for m in metrics:
            if m.checked == 0:
                continue  # nothing was checked: the condition neither holds nor clears
            message = (
                f"{source}: rule {m.rule} failed {m.failed} of {m.checked} in batch {batch_id}"
                + (f" ({m.detail})" if m.detail else "")
                if m.failed
                else f"{source}: rule {m.rule} passes again ({m.checked} checked in batch {batch_id})"
            )
            obs = Observation(alert_key(source, m.rule), rules.severity(m.rule), m.failed > 0, message)
            observe(conn, settings, obs, now)
    return [StoredMetric(now, m.rule, m.checked, m.failed, rules.severity(m.rule)) for m in metrics]


def _volume(conn: psycopg.Connection[Any], source: str, rule: Volume, facts: BatchFacts, lateness_s: int) -> Metric:
    """Add this batch's window counts; judge the windows that closed (end + lateness <= watermark)."""
    name = rule.rule_name
    conn.cursor().executemany(
        "INSERT INTO dq_volume (source, rule, window_start, events) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (source, rule, window_start) DO UPDATE SET events = dq_volume.events + excluded.events",
        [(source, name, ws, n) for ws, n in facts.windows.items()],
    )
    if facts.watermark is None:
        return Metric(name, 0, 0)
    closed_before = facts.watermark - dt.timedelta(seconds=rule.window_s + lateness_s)
    judged = conn.execute(
        "UPDATE dq_volume SET evaluated = true WHERE source = %s AND rule = %s AND NOT evaluated"
        " AND window_start <= %s RETURNING window_start, events",
        (source, name, closed_before),
    ).fetchall()
    lo = rule.min if rule.min is not None else 0
    hi = rule.max if rule.max is not None else float("inf")
    bad = [(ws, n) for ws, n in judged if not lo <= n <= hi]
    detail = ", ".join(f"window {ws:%Y-%m-%d %H:%M} had {n} events" for ws, n in bad[:3])
    if bad:
        detail += f"; expected {lo}..{hi}"
    return Metric(name, len(judged), len(bad), detail)


def _drift(
    conn: psycopg.Connection[Any], rule: SchemaDrift, *, source: str, batch_id: int, facts: BatchFacts
) -> Metric:
    """New schema ids (after the first seen), and optional fields that were seen and now stop arriving."""
    seen = conn.execute("SELECT kind, name FROM dq_seen WHERE source = %s", (source,)).fetchall()
    ids = {n for k, n in seen if k == "schema_id"}
    fields = {n for k, n in seen if k == "field"}
    new_ids = [i for i in facts.schema_ids if str(i) not in ids]
    stopped = sorted(f for f in fields if facts.valid >= rule.min_rows and facts.non_null.get(f, 0) == 0)
    fresh = [("schema_id", str(i)) for i in new_ids]
    fresh += [("field", f) for f, n in facts.non_null.items() if n > 0 and f not in fields]
    conn.cursor().executemany(
        "INSERT INTO dq_seen (source, kind, name, batch_id) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        [(source, k, n, batch_id) for k, n in fresh],
    )
    changes = [f"new schema id {i}" for i in new_ids] if ids else []
    changes += [f"field {f} stopped arriving" for f in stopped]
    return Metric(rule.rule_name, 1, 1 if changes else 0, "; ".join(changes))
