"""Delivers queued notifications (``dq_alert_deliveries``) off the streaming job's critical path.

A background thread polls for due deliveries, sends each once per channel and records the
outcome. A failure (webhook 500, SMTP down, broker away) schedules a retry with exponential
backoff (``alert.retry_base_s`` doubling up to ``alert.retry_max_s``); after ``alert.max_attempts``
the delivery is marked ``failed`` and stays recorded. Rows are claimed with ``FOR UPDATE SKIP
LOCKED``, so several dispatchers never send one notification twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import psycopg

from eventlake import pg
from eventlake.alerting.channels import Channel, build_channels
from eventlake.alerting.store import ensure_alert_tables
from eventlake.config import Settings
from eventlake.observability.metrics import (
    ALERT_DISPATCHER_ERRORS,
    ALERT_NOTIFICATIONS,
    ALERT_OUTBOX_PENDING,
    DQ_OPEN_ALERTS,
)

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self, settings: Settings, postgres_url: str, bootstrap: str, channels: Mapping[str, Channel] | None = None
    ) -> None:
        self._settings = settings
        self._url = postgres_url
        self._channels = dict(channels) if channels is not None else build_channels(settings, bootstrap)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with pg.connect(postgres_url) as conn:
            ensure_alert_tables(conn)

    def run_once(self, limit: int = 100) -> int:
        """Try up to ``limit`` due deliveries once each; returns how many were sent."""
        sent = 0
        with pg.connect(self._url) as conn:
            open_alerts: dict[str, int] = dict(
                conn.execute("SELECT severity, count(*) FROM dq_alerts WHERE status = 'firing' GROUP BY 1").fetchall()
            )
            for severity in ("warning", "critical"):
                DQ_OPEN_ALERTS.labels(severity).set(open_alerts.get(severity, 0))
            ALERT_OUTBOX_PENDING.set(_pending(conn))
            for _ in range(limit):
                # One row claimed per transaction: a commit releases every lock it holds.
                row = conn.execute(
                    "SELECT id, alert_id, channel, payload, attempts FROM dq_alert_deliveries"
                    " WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY id LIMIT 1"
                    " FOR UPDATE SKIP LOCKED"
                ).fetchone()
                if row is None:
                    break
                sent += self._deliver(conn, row)
                conn.commit()
        return sent

    def _deliver(self, conn: psycopg.Connection[Any], row: tuple[Any, ...]) -> int:
        delivery_id, alert_id, channel, payload, attempts = row
        sender = self._channels.get(channel)
        try:
            if sender is None:
                raise RuntimeError(f"channel {channel!r} is not configured in this process")
            sender.send(payload)
        except Exception as err:  # any channel failure is recorded and retried, never raised
            cfg = self._settings.alert
            attempts += 1
            delay = min(cfg.retry_base_s * 2 ** (attempts - 1), cfg.retry_max_s)
            status = "failed" if attempts >= cfg.max_attempts else "pending"
            conn.execute(
                "UPDATE dq_alert_deliveries SET attempts = %s, last_error = %s, status = %s,"
                " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                (attempts, f"{type(err).__name__}: {err}"[:1000], status, delay, delivery_id),
            )
            ALERT_NOTIFICATIONS.labels(channel, "failed" if status == "failed" else "retry").inc()
            log.warning(
                "alert delivery failed",
                extra={
                    "channel": channel,
                    "key": payload.get("key") if isinstance(payload, dict) else None,
                    "attempts": attempts,
                    "status": status,
                    "retry_in_s": delay,
                    "error": f"{type(err).__name__}: {err}"[:300],
                },
            )
            return 0
        conn.execute(
            "UPDATE dq_alert_deliveries SET status = 'sent', sent_at = now(), attempts = %s WHERE id = %s",
            (attempts + 1, delivery_id),
        )
        conn.execute(
            "UPDATE dq_alerts SET channels = array_append(channels, %s) WHERE id = %s AND NOT (%s = ANY(channels))",
            (channel, alert_id, channel),
        )
        ALERT_NOTIFICATIONS.labels(channel, "sent").inc()
        return 1

    def pending(self) -> int:
        with pg.connect(self._url) as conn:
            return _pending(conn)

    def drain(self, timeout_s: float) -> int:
        """Deliver until nothing is pending or ``timeout_s`` passed; returns what is still pending."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.run_once()
            if self.pending() == 0:
                return 0
            time.sleep(min(self._settings.alert.poll_s, max(0.0, deadline - time.monotonic())))
        return self.pending()

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._loop, name="eventlake-alert-dispatcher", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.alert.poll_s):
            try:
                self.run_once()
            except psycopg.Error as err:
                # PostgreSQL away: the deliveries wait in the table; try again next poll.
                ALERT_DISPATCHER_ERRORS.labels(type(err).__name__).inc()
                log.warning("alert dispatcher cannot reach PostgreSQL", extra={"error": str(err)[:300]})
            except Exception as err:
                # A bug must not end delivery for the process's lifetime: log it loudly, poll again.
                ALERT_DISPATCHER_ERRORS.labels(type(err).__name__).inc()
                log.exception("alert dispatcher poll failed", extra={"error": f"{type(err).__name__}: {err}"[:300]})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def _pending(conn: psycopg.Connection[Any]) -> int:
    """Deliveries still to send (the outbox backlog)."""
    row = conn.execute("SELECT count(*) FROM dq_alert_deliveries WHERE status = 'pending'").fetchone()
    return int(row[0]) if row else 0
