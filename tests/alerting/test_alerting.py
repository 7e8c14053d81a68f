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

from eventlake.alerting.channels import CLOSE_FLUSH_S
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


def test_a_resend_carries_the_same_idempotency_key_on_every_channel(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str
) -> None:
    """Slack and SMTP accept the first send but their answer never arrives (it comes after the
    client's timeout): the dispatcher sends again, at-least-once, with the same key; a receiver that
    dedupes by it (Idempotency-Key, Message-ID) keeps one. The next notification has its own key."""
    hook = Webhook(delays_s=[1.5])
    mailbox = Mailbox(delays_s=[1.5])
    port = free_port()
    try:
        settings = alert_settings(
            make_settings,
            kafka_bootstrap,
            slack={"webhook_url": hook.url, "timeout_s": 0.3},
            smtp={"host": "127.0.0.1", "port": port, "timeout_s": 0.3},
        )
        dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
        with smtp_server(port, mailbox):
            apply(fresh_db, settings, True, T0)
            assert dispatcher.drain(20) == 0
            with psycopg.connect(fresh_db) as conn:
                rows = conn.execute(
                    "SELECT channel, attempts, payload->>'idempotency_key', payload->>'episode'"
                    " FROM dq_alert_deliveries ORDER BY id"
                ).fetchall()
                alert_id = conn.execute("SELECT id FROM dq_alerts").fetchone()[0]  # type: ignore[index]
            keys = {r[2] for r in rows}
            assert len(keys) == 1 and None not in keys  # one notification, one key for all its channels
            (key,) = keys
            assert {r[0]: r[1] for r in rows} == {"kafka": 1, "slack": 2, "email": 2}  # two tries each
            assert {r[3] for r in rows} == {f"{KEY}#{alert_id}"}
            # Slack itself would post both; deduped by the header there is one.
            assert hook.calls == 2 and len(hook.bodies) == 2
            assert hook.by_key() == {key: 2}
            assert f"id `{key}`" in hook.bodies[0]["blocks"][2]["elements"][0]["text"]
            assert mailbox.by_message_id() == {f"<{key}@example.com>": 2}
            # A second notification of the same episode (resolved) has a key of its own.
            apply(fresh_db, settings, False, T0 + dt.timedelta(seconds=90))
            assert dispatcher.drain(20) == 0
        resolved_key = next(k for k in hook.by_key() if k != key)
        assert hook.by_key() == {key: 2, resolved_key: 1}
        assert mailbox.by_message_id()[f"<{resolved_key}@example.com>"] == 1
        consumer = Consumer(
            {"bootstrap.servers": kafka_bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([settings.topics.alerts])
        records: list[tuple[bytes | None, dict[str, bytes]]] = []
        deadline = time.monotonic() + 20
        while len(records) < 2 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                records.append((msg.key(), dict(msg.headers() or [])))
        consumer.close()
        episode = f"{KEY}#{alert_id}".encode()
        assert records == [
            (episode, {"idempotency-key": key.encode()}),
            (episode, {"idempotency-key": resolved_key.encode()}),
        ]
    finally:
        hook.close()


def test_a_receiver_answering_a_binary_error_body_is_recorded_and_retried(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str
) -> None:
    """A webhook URL pointing at something that answers 502 with binary bytes: the error text has NUL
    bytes, which PostgreSQL text refuses. The failure must be recorded (not end the poll as if
    PostgreSQL were down, sending nothing else) and the delivery retried."""
    hook = Webhook(statuses=[502], error_body=b"\x00\x01\x02 upstream \x00")
    try:
        settings = alert_settings(make_settings, kafka_bootstrap, slack={"webhook_url": hook.url})
        dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
        apply(fresh_db, settings, True, T0)
        assert dispatcher.run_once() == 1  # kafka sent; slack failed and recorded, nothing raised
        with psycopg.connect(fresh_db) as conn:
            status, attempts, error = conn.execute(
                "SELECT status, attempts, last_error FROM dq_alert_deliveries WHERE channel = 'slack'"
            ).fetchone()  # type: ignore[misc]
        assert (status, attempts) == ("pending", 1)
        assert error.startswith("RuntimeError: Slack webhook answered 502") and "\x00" not in error
        assert dispatcher.drain(20) == 0
        assert hook.calls == 2 and len(hook.bodies) == 1
    finally:
        hook.close()


def test_deliveries_that_break_the_dispatcher_do_not_stop_the_alerts_behind_them(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """Two bad rows ahead of a good alert: an attempts count whose backoff overflows a float, and one
    at the integer column's maximum (its failure record is out of range). The running thread must
    record both, count the one that broke it in eventlake_alert_dispatcher_errors_total{error}, stay
    alive and deliver the alert queued after them."""
    from eventlake.observability.metrics import ALERT_DISPATCHER_ERRORS  # noqa: PLC0415

    settings = alert_settings(make_settings, kafka_bootstrap, slack={"webhook_url": webhook.url}, poll_s=0.1)
    dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
    apply(fresh_db, settings, True, T0)
    dispatcher.run_once()  # the first alert is out
    assert webhook.calls == 1
    with psycopg.connect(fresh_db) as conn:
        alert_id = conn.execute("SELECT id FROM dq_alerts").fetchone()[0]  # type: ignore[index]
        bad = [
            conn.execute(
                "INSERT INTO dq_alert_deliveries (alert_id, kind, channel, payload, attempts)"
                " VALUES (%s, 'firing', 'pager', '{\"key\": \"k\"}', %s) RETURNING id",
                (alert_id, attempts),
            ).fetchone()[0]  # type: ignore[index]
            for attempts in (1100, 2**31 - 1)
        ]
    with psycopg.connect(fresh_db) as conn, conn.transaction():
        observe(conn, settings, Observation("dq:transactions:later", "warning", True, "later"), T0)
    before = ALERT_DISPATCHER_ERRORS.labels("NumericValueOutOfRange")._value.get()
    dispatcher.start()
    try:
        deadline = time.monotonic() + 20
        with caplog.at_level("ERROR", logger="eventlake.alerting.dispatcher"):
            while time.monotonic() < deadline and (dispatcher.pending() or webhook.calls < 2):
                time.sleep(0.1)
        assert dispatcher.alive
    finally:
        dispatcher.stop()
    assert not dispatcher.alive
    assert webhook.calls == 2 and "dq:transactions:later" in webhook.bodies[1]["text"]
    with psycopg.connect(fresh_db) as conn:
        rows = dict(
            conn.execute("SELECT id, status || ' ' || last_error FROM dq_alert_deliveries WHERE id = ANY(%s)", (bad,))
        )
    assert rows[bad[0]] == "failed RuntimeError: channel 'pager' is not configured in this process"
    assert rows[bad[1]].startswith("failed dispatcher: NumericValueOutOfRange")
    assert ALERT_DISPATCHER_ERRORS.labels("NumericValueOutOfRange")._value.get() == before + 1
    broke = [r for r in caplog.records if r.getMessage() == "alert delivery broke the dispatcher"]
    assert [(r.delivery_id, r.channel, r.key) for r in broke] == [(bad[1], "pager", "k")]  # type: ignore[attr-defined]


def test_the_outbox_backlog_gauge_is_set_on_every_poll(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str
) -> None:
    """eventlake_alert_outbox_pending after a poll is what is still pending then (not what was before
    it sent), and the dispatcher thread keeps it current without anyone calling run_once."""
    from eventlake.observability.metrics import ALERT_OUTBOX_PENDING  # noqa: PLC0415

    hook = Webhook(statuses=[500, 500])
    try:
        settings = alert_settings(
            make_settings, kafka_bootstrap, slack={"webhook_url": hook.url}, poll_s=0.1, retry_base_s=0.3
        )
        dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
        apply(fresh_db, settings, True, T0)
        dispatcher.run_once()
        assert ALERT_OUTBOX_PENDING._value.get() == 1  # kafka sent, slack waits for its retry
        dispatcher.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (hook.calls < 3 or ALERT_OUTBOX_PENDING._value.get() != 0):
                time.sleep(0.05)
            assert hook.calls == 3 and ALERT_OUTBOX_PENDING._value.get() == 0
            # A webhook that answers 500 from now on: the backlog stays visible, poll after poll.
            hook.statuses = [500] * 1000
            with psycopg.connect(fresh_db) as conn, conn.transaction():
                observe(conn, settings, Observation("dq:user_activity:other", "warning", True, "x"), T0)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and hook.calls < 5:
                time.sleep(0.05)
            assert ALERT_OUTBOX_PENDING._value.get() == 1
        finally:
            dispatcher.stop()
    finally:
        hook.close()


def test_stop_closes_the_kafka_channel_within_a_bound_and_it_stops_reconnecting(
    make_settings: MakeSettings,
    kafka_bootstrap: str,
    fresh_db: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker is gone (nothing listens on its port) and an alert is still in the producer's queue
    (its send timed out): stopping the dispatcher waits a bounded time for it, drops it (the outbox
    keeps the delivery for the next dispatcher) and ends the producer, whose librdkafka threads
    otherwise reconnect, and log each refused connection, for as long as the process lives."""
    settings = alert_settings(make_settings, kafka_bootstrap)
    gone = f"127.0.0.1:{free_port()}"
    dispatcher = Dispatcher(settings, fresh_db, gone)
    apply(fresh_db, settings, True, T0)
    assert dispatcher.run_once() == 1  # the log channel; Kafka timed out, its record still queued
    assert gone in capfd.readouterr().err  # librdkafka reporting its refused connections
    caplog.clear()
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="eventlake.alerts"):
        dispatcher.stop()
    assert time.monotonic() - started < CLOSE_FLUSH_S + 3
    assert [r.getMessage() for r in caplog.records if r.name == "eventlake.alerts"] == [
        "alerts still in flight dropped at close"
    ]
    capfd.readouterr()
    time.sleep(3)
    assert gone not in capfd.readouterr().err  # nothing reconnects any more
    dispatcher.stop()  # safe twice
    with psycopg.connect(fresh_db) as conn:
        rows: dict[str, str] = dict(conn.execute("SELECT channel, status || ' ' || attempts FROM dq_alert_deliveries"))
    assert rows == {"log": "sent 1", "kafka": "pending 1"}


def test_a_failed_delivery_is_logged_with_the_fields_of_a_broken_one(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A channel failure (webhook 500) and a delivery that broke the dispatcher (its failure record
    is out of range) are logged with the same structured fields, so one log query finds both."""
    hook = Webhook(statuses=[500])
    try:
        settings = alert_settings(make_settings, kafka_bootstrap, slack={"webhook_url": hook.url})
        dispatcher = Dispatcher(settings, fresh_db, kafka_bootstrap)
        apply(fresh_db, settings, True, T0)
        with psycopg.connect(fresh_db) as conn:
            alert_id = conn.execute("SELECT id FROM dq_alerts").fetchone()[0]  # type: ignore[index]
            conn.execute(
                "INSERT INTO dq_alert_deliveries (alert_id, kind, channel, payload, attempts)"
                " VALUES (%s, 'firing', 'pager', '{\"key\": \"k\"}', %s)",
                (alert_id, 2**31 - 1),
            )
        with caplog.at_level("WARNING", logger="eventlake.alerting.dispatcher"):
            dispatcher.run_once()
        dispatcher.stop()
    finally:
        hook.close()
    fields = ("delivery_id", "alert_id", "channel", "key", "attempts", "status", "retry_in_s", "error")
    logged: dict[str, dict[str, Any]] = {
        r.getMessage(): {f: getattr(r, f, None) for f in fields}
        for r in caplog.records
        if r.getMessage() in ("alert delivery failed", "alert delivery broke the dispatcher")
    }
    failed, broke = logged["alert delivery failed"], logged["alert delivery broke the dispatcher"]
    assert [failed[f] for f in ("alert_id", "channel", "key", "status")] == [alert_id, "slack", KEY, "pending"]
    assert failed["attempts"] == 1 and failed["retry_in_s"] > 0 and "500" in failed["error"]
    assert [broke[f] for f in ("alert_id", "channel", "key", "status")] == [alert_id, "pager", "k", "failed"]
    assert broke["error"].startswith("NumericValueOutOfRange")
    assert isinstance(failed["delivery_id"], int) and isinstance(broke["delivery_id"], int)
