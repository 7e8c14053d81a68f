"""Alert lifecycle and delivery against real servers: PostgreSQL, Kafka, an HTTP webhook receiver
(standing in for Slack, which needs an account) and aiosmtpd."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer

from eventlake.alerting.dispatcher import Dispatcher
from eventlake.alerting.store import Observation, ensure_alert_tables, observe
from eventlake.config import Settings
from eventlake.kafka.admin import admin_client, provision_topics
from tests.alerting.receivers import Mailbox, Webhook, free_port, smtp_server
from tests.conftest import MakeSettings

KEY = "dq:iot_sensors:null_required:value"
T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def alert_settings(
    make_settings: MakeSettings,
    kafka_bootstrap: str,
    *,
    slack: dict[str, Any] | None = None,
    smtp: dict[str, Any] | None = None,
    **alert: Any,
) -> Settings:
    tag = f"a{uuid.uuid4().hex[:6]}"
    channels = {k: v for k, v in (("slack", slack), ("smtp", smtp)) if v is not None}
    settings = make_settings(
        tag,
        topics={"alerts": f"{tag}.alerts"},
        alert={
            "email_to": "oncall@example.com, data@example.com",
            "email_from": "eventlake@example.com",
            "throttle_s": 3600,
            "resolve_after_s": 0,
            "retry_base_s": 0.1,
            "retry_max_s": 0.4,
        }
        | alert,
        **channels,
    )
    admin = admin_client(kafka_bootstrap)
    provision_topics(admin, {settings.topics.alerts: settings.topics.alerts_spec}, 1)
    return settings


def apply(url: str, settings: Settings, active: bool, at: dt.datetime, message: str = "3 of 100 null") -> str | None:
    with psycopg.connect(url) as conn, conn.transaction():
        return observe(conn, settings, Observation(KEY, "critical", active, message), at)


def topic_messages(bootstrap: str, topic: str, expect: int) -> list[dict[str, Any]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    out: list[dict[str, Any]] = []
    deadline = dt.datetime.now() + dt.timedelta(seconds=20)
    while len(out) < expect and dt.datetime.now() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            out.append(json.loads(msg.value()))
    # Nothing more arrives after the expected ones.
    extra = consumer.poll(1.0)
    consumer.close()
    assert extra is None or extra.error() is not None
    return out


def test_fire_throttle_resolve_on_every_channel(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str, webhook: Webhook
) -> None:
    mailbox = Mailbox()
    port = free_port()
    settings = alert_settings(
        make_settings, kafka_bootstrap, slack={"webhook_url": webhook.url}, smtp={"host": "127.0.0.1", "port": port}
    )
    with psycopg.connect(fresh_db) as conn:
        ensure_alert_tables(conn)
    # Firing three times within the throttle interval queues one notification.
    assert apply(fresh_db, settings, True, T0) == "firing"
    assert apply(fresh_db, settings, True, T0 + dt.timedelta(seconds=30), "5 of 100 null") is None
    assert apply(fresh_db, settings, True, T0 + dt.timedelta(seconds=60)) is None
    with smtp_server(port, mailbox):
        dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
        assert dispatcher.drain(20) == 0
        # Clears: resolved, notified once.
        assert apply(fresh_db, settings, False, T0 + dt.timedelta(seconds=90)) == "resolved"
        assert apply(fresh_db, settings, False, T0 + dt.timedelta(seconds=95)) is None
        assert dispatcher.drain(20) == 0
        # Fires again within the throttle interval: recorded, not notified (and so no resolve notice).
        assert apply(fresh_db, settings, True, T0 + dt.timedelta(seconds=120)) is None
        assert apply(fresh_db, settings, False, T0 + dt.timedelta(seconds=150)) is None
        # After the interval a reminder goes out.
        assert apply(fresh_db, settings, True, T0 + dt.timedelta(hours=2)) == "firing"
        assert dispatcher.drain(20) == 0

    kinds = [b["text"].split()[1] for b in webhook.bodies]
    assert kinds == ["FIRING", "RESOLVED", "FIRING"]
    first = webhook.bodies[0]
    assert first["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"[eventlake] FIRING critical: {KEY}"},
    }
    assert first["blocks"][1]["type"] == "section" and "3 of 100 null" in first["blocks"][1]["text"]["text"]
    assert KEY in first["blocks"][2]["elements"][0]["text"]

    assert len(mailbox.messages) == 3
    envelope, msg = mailbox.messages[0]
    assert sorted(envelope.rcpt_tos) == ["data@example.com", "oncall@example.com"]
    assert envelope.mail_from == "eventlake@example.com"
    assert msg["Subject"].strip() == f"[eventlake] FIRING critical: {KEY}"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "3 of 100 null" in parts["text/plain"] and "<h3>" in parts["text/html"]
    assert [m["Subject"].split()[1] for _, m in mailbox.messages] == ["FIRING", "RESOLVED", "FIRING"]

    on_topic = topic_messages(kafka_bootstrap, settings.topics.alerts, 3)
    assert [(m["key"], m["kind"]) for m in on_topic] == [(KEY, "firing"), (KEY, "resolved"), (KEY, "firing")]

    with psycopg.connect(fresh_db) as conn:
        alerts = conn.execute(
            "SELECT status, sorted_channels FROM (SELECT id, status,"
            " ARRAY(SELECT unnest(channels) ORDER BY 1) AS sorted_channels FROM dq_alerts) a"
            " ORDER BY id"
        ).fetchall()
        undelivered = conn.execute("SELECT count(*) FROM dq_alert_deliveries WHERE status <> 'sent'").fetchone()
    assert alerts == [
        ("resolved", ["email", "kafka", "slack"]),
        ("resolved", []),
        ("firing", ["email", "kafka", "slack"]),
    ]
    assert undelivered == (0,)


def test_webhook_500_then_200_delivers_once_late(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str
) -> None:
    hook = Webhook(statuses=[500, 500])
    try:
        settings = alert_settings(make_settings, kafka_bootstrap, slack={"webhook_url": hook.url})
        dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
        apply(fresh_db, settings, True, T0)
        dispatcher.run_once()  # the webhook fails: nothing raised, the delivery waits for a retry
        assert hook.calls == 1 and hook.bodies == []
        with psycopg.connect(fresh_db) as conn:
            status, attempts, error = conn.execute(
                "SELECT status, attempts, last_error FROM dq_alert_deliveries WHERE channel = 'slack'"
            ).fetchone()  # type: ignore[misc]
        assert (status, attempts) == ("pending", 1) and "500" in error and hook.url not in error
        assert dispatcher.drain(20) == 0
        assert hook.calls == 3 and len(hook.bodies) == 1  # two failures, then exactly one delivery
    finally:
        hook.close()


def test_smtp_down_then_up_delivers_once(make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str) -> None:
    port = free_port()
    settings = alert_settings(make_settings, kafka_bootstrap, smtp={"host": "127.0.0.1", "port": port})
    dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
    apply(fresh_db, settings, True, T0)
    dispatcher.run_once()  # SMTP is down: connection refused, recorded, retried later
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute("SELECT status, last_error FROM dq_alert_deliveries WHERE channel = 'email'").fetchone()
    assert row is not None and row[0] == "pending" and "Connection" in row[1]
    mailbox = Mailbox()
    with smtp_server(port, mailbox):
        assert dispatcher.drain(20) == 0
    assert len(mailbox.messages) == 1


def test_undeliverable_alert_stays_recorded(make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str) -> None:
    hook = Webhook(statuses=[500] * 10)
    try:
        settings = alert_settings(make_settings, kafka_bootstrap, slack={"webhook_url": hook.url}, max_attempts=3)
        dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
        apply(fresh_db, settings, True, T0)
        assert dispatcher.drain(10) == 0
        assert hook.calls == 3
        with psycopg.connect(fresh_db) as conn:
            deliveries = dict(conn.execute("SELECT channel, status FROM dq_alert_deliveries").fetchall())
            channels = conn.execute("SELECT channels FROM dq_alerts").fetchone()
        assert deliveries == {"slack": "failed", "kafka": "sent"}
        assert channels == (["kafka"],)
    finally:
        hook.close()


def test_log_channel_when_nothing_is_configured(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = alert_settings(make_settings, kafka_bootstrap)
    dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
    apply(fresh_db, settings, True, T0)
    with caplog.at_level("WARNING", logger="eventlake.alerts"):
        assert dispatcher.drain(20) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "eventlake.alerts"] == [
        f"[eventlake] FIRING critical: {KEY}"
    ]


def test_dispatcher_thread_survives_a_bad_delivery_and_reports_its_backlog(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str, webhook: Webhook
) -> None:
    """A delivery that breaks the dispatcher's own code (not a channel error) must not end delivery:
    the thread goes on, the bad row is recorded with its error, the good one is sent."""
    from eventlake.observability.metrics import ALERT_OUTBOX_PENDING  # noqa: PLC0415

    settings = alert_settings(
        make_settings, kafka_bootstrap, slack={"webhook_url": webhook.url}, poll_s=0.1, max_attempts=2
    )
    dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
    apply(fresh_db, settings, True, T0)
    with psycopg.connect(fresh_db) as conn:
        alert_id = conn.execute("SELECT id FROM dq_alerts").fetchone()
        assert alert_id is not None
        # Older than the real deliveries, so it is claimed first: a payload that is not an object,
        # for a channel this process lacks (the failure path then read payload.get and raised).
        conn.execute(
            "INSERT INTO dq_alert_deliveries (alert_id, kind, channel, payload, next_attempt_at)"
            " VALUES (%s, 'firing', 'pager', '\"not an object\"', now() - interval '1 hour')",
            alert_id,
        )
    dispatcher.run_once(limit=0)
    assert ALERT_OUTBOX_PENDING._value.get() == 3  # slack, kafka and the bad one
    dispatcher.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (dispatcher.pending() or not webhook.calls):
            time.sleep(0.1)
        assert dispatcher._thread is not None and dispatcher._thread.is_alive()
    finally:
        dispatcher.stop()
    assert webhook.calls == 1
    with psycopg.connect(fresh_db) as conn:
        rows = dict(conn.execute("SELECT channel, status || ' ' || coalesce(last_error, '') FROM dq_alert_deliveries"))
    assert rows["slack"].startswith("sent") and rows["kafka"].startswith("sent")
    assert rows["pager"] == "failed RuntimeError: channel 'pager' is not configured in this process"
