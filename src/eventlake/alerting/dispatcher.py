"""Delivers queued notifications (``dq_alert_deliveries``) off the streaming job's critical path.

A background thread polls for due deliveries, sends each once per channel and records the
outcome. A failure (webhook 500, SMTP down, broker away) schedules a retry with exponential
backoff (``alert.retry_base_s`` doubling up to ``alert.retry_max_s``); after ``alert.max_attempts``
the delivery is marked ``failed`` and stays recorded. Rows are claimed with ``FOR UPDATE SKIP
LOCKED``, so two dispatchers never send one delivery at the same time.

**Guarantee: at-least-once.** A delivery is sent, then recorded as sent in the same transaction
that claimed it: a process killed between the two, or a send whose answer is lost (a timeout after
the receiver accepted it), sends it again. Every re-send carries the notification's idempotency
key (see :mod:`eventlake.alerting.channels`), so a receiver that dedupes by key shows it once.

**A delivery that breaks the dispatcher** (a bug, a malformed row, an error text PostgreSQL cannot
store) is that delivery's problem only: it is logged with its id, channel and key, counted in
``eventlake_alert_dispatcher_errors_total{error}``, recorded for retry (or ``failed`` after
``alert.max_attempts``), and the poll goes on with the next one. Only a lost PostgreSQL connection
ends a poll; the thread polls again after ``alert.poll_s`` whatever happened.

``python -m eventlake.alerting.dispatcher`` runs a dispatcher on its own (``EVENTLAKE_POSTGRES_URL``,
``EVENTLAKE_KAFKA_BOOTSTRAP``) until SIGTERM: a deployment can run delivery as its own process, and
the kill -9 tests and ``bench/alerts.py`` kill it.
"""

from __future__ import annotations

import logging
import signal
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

#: longest error text kept in ``dq_alert_deliveries.last_error``
ERROR_CHARS = 1000


def error_text(err: BaseException, limit: int = ERROR_CHARS) -> str:
    """``Type: message`` fit for a text column and a log line: NUL bytes (which PostgreSQL text
    refuses, e.g. from a binary HTTP body) replaced, cut to ``limit``; a ``__str__`` that raises
    still gives the type."""
    try:
        text = f"{type(err).__name__}: {err}"
    except Exception:
        text = f"{type(err).__name__}: <unprintable>"
    return text.replace("\x00", "\\0")[:limit]


def retry_delay_s(settings: Settings, attempts: int) -> float:
    """Backoff after ``attempts`` failed tries, bounded for any count (2**n overflows a float)."""
    cfg = settings.alert
    return float(min(cfg.retry_base_s * 2.0 ** min(max(attempts - 1, 0), 64), cfg.retry_max_s))


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
        """Try up to ``limit`` due deliveries once each; returns how many were sent. Sets the open
        alert gauges and the outbox backlog gauge at the start and the backlog again at the end."""
        sent = 0
        tried: list[int] = []  # each delivery at most once per poll, even if its retry is due already
        with pg.connect(self._url) as conn:
            open_alerts: dict[str, int] = dict(
                conn.execute("SELECT severity, count(*) FROM dq_alerts WHERE status = 'firing' GROUP BY 1").fetchall()
            )
            for severity in ("warning", "critical"):
                DQ_OPEN_ALERTS.labels(severity).set(open_alerts.get(severity, 0))
            ALERT_OUTBOX_PENDING.set(_pending(conn))
            conn.commit()
            for _ in range(limit):
                # One row claimed per transaction: a commit releases every lock it holds.
                row = conn.execute(
                    "SELECT id, alert_id, channel, payload, attempts FROM dq_alert_deliveries"
                    " WHERE status = 'pending' AND next_attempt_at <= now() AND NOT (id = ANY(%s::bigint[]))"
                    " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    (tried,),
                ).fetchone()
                if row is None:
                    break
                tried.append(int(row[0]))
                try:
                    sent += self._deliver(conn, row)
                    conn.commit()
                except psycopg.OperationalError:
                    raise  # the connection is gone: the poll ends, the loop tries again later
                except Exception as err:
                    # Not the channel (its errors are recorded in _deliver) but this row or our own
                    # code: record it against this delivery, go on with the next one.
                    conn.rollback()
                    self._record_broken(conn, row, err)
            ALERT_OUTBOX_PENDING.set(_pending(conn))
        return sent

    def _deliver(self, conn: psycopg.Connection[Any], row: tuple[Any, ...]) -> int:
        delivery_id, alert_id, channel, payload, attempts = row
        sender = self._channels.get(channel)
        if isinstance(payload, dict) and "idempotency_key" not in payload:
            # Queued by a version without keys: the delivery id is stable across its retries.
            payload["idempotency_key"] = f"delivery-{delivery_id}"
        try:
            if sender is None:
                raise RuntimeError(f"channel {channel!r} is not configured in this process")
            if not isinstance(payload, dict):
                raise TypeError(f"payload is a JSON {type(payload).__name__}, not an object")
            sender.send(payload)
        except Exception as err:  # any channel failure is recorded and retried, never raised
            attempts += 1
            delay = retry_delay_s(self._settings, attempts)
            status = "failed" if attempts >= self._settings.alert.max_attempts else "pending"
            conn.execute(
                "UPDATE dq_alert_deliveries SET attempts = %s, last_error = %s, status = %s,"
                " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                (attempts, error_text(err), status, delay, delivery_id),
            )
            ALERT_NOTIFICATIONS.labels(channel, "failed" if status == "failed" else "retry").inc()
            log.warning("alert delivery failed", extra=_delivery_extra(row, err, attempts, status, delay))
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

    def _record_broken(self, conn: psycopg.Connection[Any], row: tuple[Any, ...], err: Exception) -> None:
        """Count and log a delivery that broke the dispatcher, and schedule its retry (``failed``
        after ``alert.max_attempts``). If even that cannot be written, the row stays as it was and is
        tried again next poll (it cannot block the deliveries behind it: a poll skips what it tried)."""
        delivery_id, _, channel, _, attempts = row
        ALERT_DISPATCHER_ERRORS.labels(type(err).__name__).inc()
        try:
            attempts = int(attempts) + 1
        except (TypeError, ValueError):
            attempts = self._settings.alert.max_attempts
        status = "failed" if attempts >= self._settings.alert.max_attempts else "pending"
        delay = retry_delay_s(self._settings, attempts)
        extra = _delivery_extra(row, err, attempts, status, delay)
        log.error("alert delivery broke the dispatcher", exc_info=err, extra=extra)
        try:
            conn.execute(
                "UPDATE dq_alert_deliveries SET attempts = %s, last_error = %s, status = %s,"
                " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                (min(attempts, 2**31 - 1), "dispatcher: " + error_text(err), status, delay, delivery_id),
            )
            ALERT_NOTIFICATIONS.labels(str(channel), "failed" if status == "failed" else "retry").inc()
            conn.commit()
        except psycopg.OperationalError:
            raise
        except Exception:
            conn.rollback()
            log.exception("alert delivery could not be recorded; skipped this poll", extra={"delivery_id": delivery_id})

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

    @property
    def alive(self) -> bool:
        """The delivery thread runs (False before :meth:`start` and after :meth:`stop`)."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self._settings.alert.poll_s):
                try:
                    self.run_once()
                except psycopg.Error as err:
                    # PostgreSQL away: the deliveries wait in the table; try again next poll.
                    ALERT_DISPATCHER_ERRORS.labels(type(err).__name__).inc()
                    log.warning("alert dispatcher cannot reach PostgreSQL", extra={"error": error_text(err, 300)})
                except Exception as err:
                    # A bug must not end delivery for the process's lifetime: log it loudly, poll again.
                    ALERT_DISPATCHER_ERRORS.labels(type(err).__name__).inc()
                    log.exception("alert dispatcher poll failed", extra={"error": error_text(err, 300)})
        except BaseException as err:
            # Only BaseException (SystemExit, KeyboardInterrupt from a channel) gets here: never silently.
            ALERT_DISPATCHER_ERRORS.labels(type(err).__name__).inc()
            log.critical("alert dispatcher thread ended", exc_info=err, extra={"error": error_text(err, 300)})
            raise

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop the delivery thread; then (``drain_s`` > 0) deliver what is due for up to that long
        in this thread; then close the channels (the Kafka channel's producer would otherwise keep
        reconnecting to its brokers, and logging it, for the process's lifetime). Safe twice; a
        dispatcher that never started is closed as well."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            if drain_s > 0 and (left := self.drain(timeout_s=drain_s)):
                # What stays pending is retried by the next dispatcher (it is recorded in dq_alert_deliveries).
                log.warning("alert deliveries still pending at exit", extra={"pending": left})
        finally:
            self.close()

    def close(self) -> None:
        """Close every channel (each is tried; a failure is logged, never raised)."""
        for name, channel in self._channels.items():
            try:
                channel.close()
            except Exception as err:
                log.warning("closing an alert channel failed", extra={"channel": name, "error": error_text(err, 300)})


def _delivery_extra(
    row: tuple[Any, ...], err: BaseException, attempts: int, status: str, delay: float
) -> dict[str, Any]:
    """The structured fields of a log record about one delivery's failure (``row`` as claimed)."""
    delivery_id, alert_id, channel, payload, _ = row
    return {
        "delivery_id": delivery_id,
        "alert_id": alert_id,
        "channel": channel,
        "key": payload.get("key") if isinstance(payload, dict) else None,
        "attempts": attempts,
        "status": status,
        "retry_in_s": delay,
        "error": error_text(err, 300),
    }


def _pending(conn: psycopg.Connection[Any]) -> int:
    """Deliveries still to send (the outbox backlog)."""
    row = conn.execute("SELECT count(*) FROM dq_alert_deliveries WHERE status = 'pending'").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    """``python -m eventlake.alerting.dispatcher``: deliver until SIGTERM/SIGINT, then stop cleanly."""
    from eventlake.config import load_settings  # noqa: PLC0415
    from eventlake.logs import configure_logging  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.log_level)
    if settings.postgres.url is None or settings.kafka.bootstrap is None:
        raise SystemExit("error: set EVENTLAKE_POSTGRES_URL and EVENTLAKE_KAFKA_BOOTSTRAP for the dispatcher")
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    dispatcher = Dispatcher(settings, settings.postgres.url.get_secret_value(), settings.kafka.bootstrap).start()
    log.info("alert dispatcher running", extra={"channels": sorted(dispatcher._channels)})
    done.wait()
    dispatcher.stop()


if __name__ == "__main__":
    main()
