"""Alert state in PostgreSQL: ``dq_alerts`` (one row per firing episode of a key) and an outbox of
deliveries, so that a notification is decided in the same transaction as the condition that
caused it and delivered later, with retries, by :mod:`eventlake.alerting.dispatcher`.

Rules, per dedupe key:

- **fire**: the condition holds and no alert of the key is open: a new ``firing`` row. It is
  notified unless a firing notification of the same key went out less than ``alert.throttle_s`` ago.
- **still firing**: ``last_seen``/``message`` move on; a reminder goes out at most once per
  ``alert.throttle_s``.
- **resolve**: the condition is clear and was last seen at least ``alert.resolve_after_s`` ago:
  the row becomes ``resolved``; a ``resolved`` notification follows if its firing one went out.

``dq_alerts.channels`` lists the channels that delivered; deliveries still pending or given up
stay in ``dq_alert_deliveries`` with their last error.

Every notification carries an ``idempotency_key``, drawn once when it is queued (in the transaction
that decides it) and stored in its payload, so every retry and every channel of that notification
sends the same key: receivers that dedupe by it (an ``Idempotency-Key`` header, an email
``Message-ID``, a Kafka header) see a re-send as the duplicate it is. ``episode`` names the firing
episode (``<key>#<alert id>``) that the notification belongs to.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from eventlake import pg
from eventlake.alerting.channels import channels
from eventlake.config import Settings

log = logging.getLogger(__name__)

Severity = Literal["warning", "critical"]

DDL = """
CREATE TABLE IF NOT EXISTS dq_alerts (
    id            bigserial PRIMARY KEY,
    key           text NOT NULL,
    severity      text NOT NULL CHECK (severity IN ('warning', 'critical')),
    status        text NOT NULL CHECK (status IN ('firing', 'resolved')),
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    message       text NOT NULL,
    channels      text[] NOT NULL DEFAULT '{}',
    resolved_at   timestamptz,
    last_notified timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS dq_alerts_one_open ON dq_alerts (key) WHERE status = 'firing';
CREATE TABLE IF NOT EXISTS dq_alert_deliveries (
    id              bigserial PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES dq_alerts (id),
    kind            text NOT NULL CHECK (kind IN ('firing', 'resolved')),
    channel         text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX IF NOT EXISTS dq_alert_deliveries_due ON dq_alert_deliveries (next_attempt_at) WHERE status = 'pending';
"""


def ensure_alert_tables(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('eventlake_dq_alerts'))")
    conn.execute(DDL)


@dataclass(frozen=True)
class Observation:
    """One evaluation of a condition: ``active`` = it holds now."""

    key: str
    severity: Severity
    active: bool
    message: str


def observe(
    conn: psycopg.Connection[Any], settings: Settings, obs: Observation, now: dt.datetime | None = None
) -> str | None:
    """Apply one observation inside the caller's transaction; returns the notification kind queued."""
    now = now or dt.datetime.now(dt.UTC)
    throttle = dt.timedelta(seconds=settings.alert.throttle_s)
    row = conn.execute(
        "SELECT id, last_seen, last_notified FROM dq_alerts WHERE key = %s AND status = 'firing' FOR UPDATE",
        (obs.key,),
    ).fetchone()
    if obs.active:
        if row is None:
            last = conn.execute("SELECT max(last_notified) FROM dq_alerts WHERE key = %s", (obs.key,)).fetchone()
            notify = last is None or last[0] is None or now - last[0] >= throttle
            alert_id = conn.execute(
                "INSERT INTO dq_alerts (key, severity, status, first_seen, last_seen, message, last_notified)"
                " VALUES (%s, %s, 'firing', %s, %s, %s, %s) RETURNING id",
                (obs.key, obs.severity, now, now, obs.message, now if notify else None),
            ).fetchone()[0]  # type: ignore[index]
            log.info("alert firing", extra={"key": obs.key, "severity": obs.severity, "notified": notify})
            return _enqueue(conn, settings, alert_id, "firing") if notify else None
        alert_id, _, notified = row
        remind = notified is None or now - notified >= throttle
        conn.execute(
            "UPDATE dq_alerts SET last_seen = %s, message = %s, severity = %s,"
            " last_notified = CASE WHEN %s THEN %s ELSE last_notified END WHERE id = %s",
            (now, obs.message, obs.severity, remind, now, alert_id),
        )
        return _enqueue(conn, settings, alert_id, "firing") if remind else None
    if row is None:
        return None
    alert_id, last_seen, notified = row
    if now - last_seen < dt.timedelta(seconds=settings.alert.resolve_after_s):
        return None
    conn.execute("UPDATE dq_alerts SET status = 'resolved', resolved_at = %s WHERE id = %s", (now, alert_id))
    log.info("alert resolved", extra={"key": obs.key})
    return _enqueue(conn, settings, alert_id, "resolved") if notified is not None else None


def fire_alert(url: str, settings: Settings, key: str, severity: Severity, message: str) -> str | None:
    """Raise (or keep firing) the alert ``key`` outside a DQ batch, e.g. for a failed batch job;
    returns the notification kind queued (None: throttled)."""
    with pg.connect(url) as conn:
        ensure_alert_tables(conn)
        with conn.transaction():
            return observe(conn, settings, Observation(key, severity, True, message))


def episode(key: str, alert_id: int) -> str:
    """The firing episode an alert row stands for: its key and row id (one open row per key)."""
    return f"{key}#{alert_id}"


def _enqueue(conn: psycopg.Connection[Any], settings: Settings, alert_id: int, kind: str) -> str:
    key, severity, first_seen, last_seen, message = conn.execute(  # type: ignore[misc]
        "SELECT key, severity, first_seen, last_seen, message FROM dq_alerts WHERE id = %s", (alert_id,)
    ).fetchone()
    payload = {
        "alert_id": alert_id,
        "episode": episode(key, alert_id),
        "idempotency_key": f"a{alert_id}-{kind}-{uuid.uuid4().hex}",
        "kind": kind,
        "key": key,
        "severity": severity,
        "message": message,
        "first_seen": first_seen.isoformat(),
        "last_seen": last_seen.isoformat(),
    }
    conn.cursor().executemany(
        "INSERT INTO dq_alert_deliveries (alert_id, kind, channel, payload) VALUES (%s, %s, %s, %s)",
        [(alert_id, kind, ch, Jsonb(payload)) for ch in channels(settings)],
    )
    return kind
