"""Notification channels. Each ``send`` raises on failure; the dispatcher retries with backoff.

Delivery is at-least-once (a send whose answer is lost is sent again), so every channel passes the
notification's ``idempotency_key`` (see :mod:`eventlake.alerting.store`) where its protocol has a
place for it, and a receiver that dedupes by it shows each notification once:

- ``slack``: an incoming webhook, Block Kit payload (``text`` is the fallback for notifications),
  header ``Idempotency-Key``. Slack's incoming webhooks do **not** honour it (a re-send posts
  twice); a relay or a receiver of our own can dedupe by it, and the key is shown in the message's
  context line so a human can tell a re-send.
- ``email``: SMTP, STARTTLS and login when configured; plain-text and HTML alternatives;
  ``Message-ID: <key@sender domain>``, the header MTAs, archives and mail clients dedupe by.
- ``kafka``: JSON on the ``topics.alerts`` topic, keyed by the episode (``<alert key>#<alert id>``),
  header ``idempotency-key``; idempotent producer (broker-side dedupe of the producer's own
  retries), consumers dedupe re-sends by the header. Its producer keeps connecting to the brokers
  until :meth:`KafkaChannel.close` (the dispatcher closes its channels when it stops).
- ``log``: a structured log record; the channel when neither Slack nor email is configured.
"""

from __future__ import annotations

import html
import json
import logging
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

import httpx
from confluent_kafka import KafkaException, Producer

from eventlake.config import Settings
from eventlake.kafka.security import client_security

log = logging.getLogger("eventlake.alerts")

ICON = {("firing", "critical"): ":red_circle:", ("firing", "warning"): ":large_orange_circle:"}


class Channel(Protocol):
    def send(self, payload: dict[str, Any]) -> None: ...

    def close(self) -> None:
        """Let go of what the channel holds (connections, threads); it sends nothing afterwards."""
        ...


#: how long closing the Kafka channel waits for records still in flight before dropping them
CLOSE_FLUSH_S = 5.0


#: the HTTP header of the Slack webhook POST that carries the idempotency key
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: the Kafka record header that carries it
KAFKA_KEY_HEADER = "idempotency-key"


def idempotency_key(payload: dict[str, Any]) -> str | None:
    """The notification's key (None for a payload without one; a DQ report has one, see
    :func:`eventlake.batch.report.report_key`)."""
    key = payload.get("idempotency_key")
    return key if isinstance(key, str) and key else None


def title(payload: dict[str, Any]) -> str:
    return f"[eventlake] {payload['kind'].upper()} {payload['severity']}: {payload['key']}"


def slack_blocks(payload: dict[str, Any]) -> dict[str, Any]:
    """The Block Kit message of one notification."""
    icon = ICON.get((payload["kind"], payload["severity"]), ":large_green_circle:")
    return {
        "text": title(payload),
        "blocks": [
            # Slack caps header text at 150 characters.
            {"type": "header", "text": {"type": "plain_text", "text": title(payload)[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {payload['message']}"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"key `{payload['key']}` · first seen {payload['first_seen']}"
                        f" · last seen {payload['last_seen']}"
                        + (f" · id `{idempotency_key(payload)}`" if idempotency_key(payload) else ""),
                    }
                ],
            },
        ],
    }


class SlackChannel:
    def __init__(self, settings: Settings) -> None:
        assert settings.slack.webhook_url is not None
        self._url = settings.slack.webhook_url.get_secret_value()
        self._timeout = settings.slack.timeout_s

    def send(self, payload: dict[str, Any]) -> None:
        key = idempotency_key(payload)
        headers = {IDEMPOTENCY_HEADER: key} if key else {}
        response = httpx.post(self._url, json=slack_blocks(payload), headers=headers, timeout=self._timeout)
        if response.status_code >= 300:
            # The URL is a secret: report the status and body only.
            raise RuntimeError(f"Slack webhook answered {response.status_code}: {response.text[:200]}")

    def close(self) -> None:
        pass  # a connection per send


def message_id(settings: Settings, payload: dict[str, Any]) -> str:
    """``<key@domain of the sender>``: the same for every re-send of one notification, so receivers
    that dedupe by Message-ID keep one; a payload without a key gets a fresh id."""
    sender = settings.alert.email_from
    domain = (sender.rpartition("@")[2].strip(" <>") if "@" in sender else "") or "eventlake.invalid"
    key = idempotency_key(payload)
    return f"<{key}@{domain}>" if key else make_msgid(domain=domain)


def email_message(settings: Settings, payload: dict[str, Any]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = title(payload)
    msg["From"] = settings.alert.email_from
    msg["To"] = ", ".join(settings.alert.recipients)
    msg["Message-ID"] = message_id(settings, payload)
    lines = [
        payload["message"],
        "",
        f"key: {payload['key']}",
        f"severity: {payload['severity']}",
        f"first seen: {payload['first_seen']}",
        f"last seen: {payload['last_seen']}",
    ]
    msg.set_content("\n".join(lines))
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(str(payload[k]))}</td></tr>"
        for k in ("key", "severity", "first_seen", "last_seen")
    )
    body = payload.get("html")  # a report carries its own HTML
    if not isinstance(body, str):
        body = (
            f"<html><body><h3>{html.escape(title(payload))}</h3><p>{html.escape(payload['message'])}</p>"
            f"<table>{rows}</table></body></html>"
        )
    msg.add_alternative(body, subtype="html")
    return msg


class EmailChannel:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, payload: dict[str, Any]) -> None:
        smtp = self._settings.smtp
        assert smtp.host is not None
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.user and smtp.password is not None:
                client.login(smtp.user, smtp.password.get_secret_value())
            client.send_message(email_message(self._settings, payload))

    def close(self) -> None:
        pass  # a connection per send


class KafkaChannel:
    """Owns a producer, whose librdkafka threads keep (re)connecting to the brokers, and log each
    failure, until :meth:`close`."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self._topic = settings.topics.alerts
        # Idempotent (implies acks=all): the producer's own retries are deduplicated by the broker.
        self._producer: Producer | None = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                **client_security(settings).librdkafka(),
            }
        )

    def send(self, payload: dict[str, Any]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError("the Kafka alert channel is closed")
        errors: list[str] = []
        key = idempotency_key(payload)
        producer.produce(
            self._topic,
            # Keyed by the episode: its firing and resolved records share a partition, in order.
            key=str(payload.get("episode") or payload["key"]).encode(),
            value=json.dumps(payload).encode(),
            headers=[(KAFKA_KEY_HEADER, key.encode())] if key else None,
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
        if producer.flush(10) > 0:
            raise KafkaException(f"alert not delivered to {self._topic} within 10 s")
        if errors:
            raise KafkaException(f"alert not delivered to {self._topic}: {errors[0]}")

    def close(self, timeout_s: float = CLOSE_FLUSH_S) -> None:
        """Deliver what is still in flight (a send that timed out) for up to ``timeout_s``, drop the
        rest (its delivery is pending in the outbox and is sent again), then end the producer. Safe twice."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        if producer.flush(timeout_s) > 0:
            left = len(producer)
            producer.purge()
            producer.poll(0)  # the dropped records' delivery reports
            log.warning("alerts still in flight dropped at close", extra={"topic": self._topic, "records": left})
        producer.close()


class LogChannel:
    def send(self, payload: dict[str, Any]) -> None:
        log.warning(title(payload), extra={"alert": payload})

    def close(self) -> None:
        pass


def channels(settings: Settings) -> list[str]:
    """Channels every notification goes to: Kafka always; Slack/email when configured; the log
    channel when neither is (so the demo shows alerts without any external service)."""
    out = ["kafka"]
    if settings.slack.webhook_url is not None:
        out.append("slack")
    if settings.smtp.host and settings.alert.recipients:
        out.append("email")
    if len(out) == 1:
        out.append("log")
    return out


def build_channels(settings: Settings, bootstrap: str) -> dict[str, Channel]:
    """The senders of :func:`channels`, plus the log channel, which can always deliver (a delivery
    queued to it by a differently configured process is not stranded)."""
    makers: dict[str, Callable[[], Channel]] = {
        "kafka": lambda: KafkaChannel(settings, bootstrap),
        "slack": lambda: SlackChannel(settings),
        "email": lambda: EmailChannel(settings),
        "log": LogChannel,
    }
    return {name: makers[name]() for name in dict.fromkeys([*channels(settings), "log"])}
