"""Deliver alerts through a dispatcher process that is killed -9 at random points, and count what
the real receivers got per idempotency key. Shared by ``tests/alerting/test_delivery_kills.py``
(bounded: a few alerts, a couple of kills) and ``bench/alerts.py`` (100 alerts, killed until done).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, TopicPartition

from eventlake.alerting.channels import KAFKA_KEY_HEADER
from eventlake.alerting.store import Observation, ensure_alert_tables, observe
from eventlake.config import Settings


def queue_alerts(url: str, settings: Settings, n: int) -> dict[int, str]:
    """``n`` alert episodes (distinct keys, each firing once): {alert id: key}, deliveries queued."""
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(url) as conn:
        ensure_alert_tables(conn)
        for i in range(n):
            with conn.transaction():
                observe(conn, settings, Observation(f"dq:bench:rule_{i:03d}", "critical", True, f"alert {i}"), now)
        return dict(conn.execute("SELECT id, key FROM dq_alerts ORDER BY id").fetchall())


def pending(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM dq_alert_deliveries WHERE status = 'pending'").fetchone()
    return int(row[0]) if row else 0


def expected_keys(url: str) -> dict[str, set[str]]:
    """Per channel, the idempotency keys of the queued notifications (one per alert)."""
    out: dict[str, set[str]] = {}
    with psycopg.connect(url) as conn:
        for channel, key in conn.execute("SELECT channel, payload->>'idempotency_key' FROM dq_alert_deliveries"):
            out.setdefault(channel, set()).add(key)
    return out


def dispatcher_env(settings: Settings, postgres_url: str, bootstrap: str) -> dict[str, str]:
    """The environment of ``python -m eventlake.alerting.dispatcher`` for ``settings``' channels."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env |= {
        "EVENTLAKE_HOME": str(settings.home),
        "EVENTLAKE_POSTGRES_URL": postgres_url,
        "EVENTLAKE_KAFKA_BOOTSTRAP": bootstrap,
        "EVENTLAKE_TOPICS_ALERTS": settings.topics.alerts,
        "EVENTLAKE_ALERT_EMAIL_FROM": settings.alert.email_from,
        "EVENTLAKE_ALERT_POLL_S": str(settings.alert.poll_s),
        "EVENTLAKE_ALERT_RETRY_BASE_S": str(settings.alert.retry_base_s),
        "EVENTLAKE_ALERT_RETRY_MAX_S": str(settings.alert.retry_max_s),
        "EVENTLAKE_ALERT_MAX_ATTEMPTS": str(settings.alert.max_attempts),
        "EVENTLAKE_LOG_LEVEL": "WARNING",
    }
    if settings.slack.webhook_url is not None:
        env["EVENTLAKE_SLACK_WEBHOOK_URL"] = settings.slack.webhook_url.get_secret_value()
        env["EVENTLAKE_SLACK_TIMEOUT_S"] = str(settings.slack.timeout_s)
    if settings.smtp.host is not None:
        env["EVENTLAKE_SMTP_HOST"] = settings.smtp.host
        env["EVENTLAKE_SMTP_PORT"] = str(settings.smtp.port)
        env["EVENTLAKE_SMTP_TIMEOUT_S"] = str(settings.smtp.timeout_s)
    if settings.alert.email_to:
        env["EVENTLAKE_ALERT_EMAIL_TO"] = settings.alert.email_to
    return env


@dataclass
class KillRun:
    spawns: int = 0
    kills: int = 0
    #: the dispatchers' stderr (JSON logs)
    log: Path | None = None


def deliver_through_kills(
    env: dict[str, str],
    url: str,
    arrivals: Callable[[], int],
    rng: random.Random,
    *,
    max_kills: int,
    window_s: float,
    log: Path,
    timeout_s: float = 300.0,
) -> KillRun:
    """Run the dispatcher as a subprocess; each time it has delivered something (``arrivals()``
    grew), wait a random 0..``window_s`` and kill -9 it if anything is still pending, then start a
    new one; after ``max_kills`` kills, let the last one finish everything and stop it with SIGTERM."""
    run = KillRun(log=log)
    deadline = time.monotonic() + timeout_s
    with log.open("ab") as err:
        while time.monotonic() < deadline:
            proc = subprocess.Popen(
                [sys.executable, "-m", "eventlake.alerting.dispatcher"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            run.spawns += 1
            try:
                if run.kills < max_kills:
                    seen = arrivals()
                    while arrivals() == seen and proc.poll() is None and time.monotonic() < deadline:
                        if pending(url) == 0:
                            break
                        time.sleep(0.005)
                    time.sleep(rng.uniform(0.0, window_s))
                    if proc.poll() is None and pending(url) > 0:
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait(timeout=10)
                        run.kills += 1
                        continue
                while pending(url) > 0 and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                if proc.poll() is not None:
                    raise RuntimeError(f"the dispatcher exited by itself ({proc.returncode}); see {log}")
                if pending(url) == 0:
                    return run
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=30)
    raise TimeoutError(f"deliveries still pending after {timeout_s} s ({run.kills} kills); see {log}")


def kafka_keys(bootstrap: str, topic: str) -> Counter[str | None]:
    """Records of ``topic`` (partition 0, the alerts topic has one) per idempotency-key header."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"count-{time.time_ns()}", "enable.auto.commit": False}
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, low)])
        out: Counter[str | None] = Counter()
        read = 0
        deadline = time.monotonic() + 30
        while read < high - low and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            read += 1
            headers = dict(msg.headers() or [])
            value = headers.get(KAFKA_KEY_HEADER)
            out[value.decode() if isinstance(value, bytes) else None] += 1
        return out
    finally:
        consumer.close()


@dataclass(frozen=True)
class Tally:
    """What one receiver got: raw deliveries, duplicates, and duplicates left after dedupe by key."""

    channel: str
    alerts: int
    raw: int
    delivered: int  # alerts with at least one delivery
    after_dedupe: int  # deliveries left when the receiver keeps one per key

    @property
    def duplicates(self) -> int:
        return self.raw - self.delivered

    @property
    def duplicates_after_dedupe(self) -> int:
        return self.after_dedupe - self.delivered


def tally(channel: str, expected: set[str], got: Counter[str | None]) -> Tally:
    """Count against the expected keys. A delivery without a key cannot be deduped: each counts."""
    raw = sum(got.values())
    delivered = sum(1 for k in expected if got.get(k, 0) > 0)
    keyless = got.get(None, 0)
    return Tally(channel, len(expected), raw, delivered, len([k for k in got if k is not None]) + keyless)
