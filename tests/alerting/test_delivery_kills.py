"""At-least-once alert delivery through kill -9, measured at real receivers: a dispatcher process
(``python -m eventlake.alerting.dispatcher``) is killed at random points while it delivers to an
HTTP receiver (Slack's stand-in), aiosmtpd and Kafka. Every alert must arrive at least once on every
channel, and deduplicated by its idempotency key exactly once. ``bench/alerts.py`` is the 100-alert
version that prints the duplicate figures."""

from __future__ import annotations

import random
from pathlib import Path

from eventlake.config import Settings
from tests.alerting.killing import (
    deliver_through_kills,
    dispatcher_env,
    expected_keys,
    kafka_keys,
    queue_alerts,
    tally,
)
from tests.alerting.receivers import Mailbox, Webhook, free_port, smtp_server
from tests.alerting.test_alerting import alert_settings
from tests.conftest import MakeSettings

ALERTS = 8


def message_keys(mailbox: Mailbox) -> dict[str | None, int]:
    """Message-ID ``<key@domain>`` -> key, counted."""
    out: dict[str | None, int] = {}
    for mid, n in mailbox.by_message_id().items():
        key = mid.strip().strip("<>").rpartition("@")[0] if mid else None
        out[key] = out.get(key, 0) + n
    return out


def test_every_alert_arrives_once_per_key_through_kill_9(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str, tmp_path: Path
) -> None:
    # Receivers answer 50 ms after accepting (as real ones take a moment): kills land in that window.
    # 16 such deliveries (>= 0.8 s of work) outlast two kills at most 0.2 s after a delivery each.
    hook = Webhook(delay_s=0.05)
    mailbox = Mailbox(delay_s=0.05)
    port = free_port()
    try:
        settings: Settings = alert_settings(
            make_settings,
            kafka_bootstrap,
            slack={"webhook_url": hook.url, "timeout_s": 5},
            smtp={"host": "127.0.0.1", "port": port, "timeout_s": 5},
            poll_s=0.05,
        )
        alerts = queue_alerts(fresh_db, settings, ALERTS)
        expected = expected_keys(fresh_db)
        assert len(alerts) == ALERTS and set(expected) == {"kafka", "slack", "email"}
        assert all(len(keys) == ALERTS and None not in keys for keys in expected.values())
        with smtp_server(port, mailbox):
            run = deliver_through_kills(
                dispatcher_env(settings, fresh_db, kafka_bootstrap),
                fresh_db,
                lambda: hook.calls + len(mailbox.messages),
                random.Random(15),
                max_kills=2,
                window_s=0.2,
                log=tmp_path / "dispatcher.log",
            )
        assert run.kills == 2 and run.spawns == 3
        got = {
            "slack": hook.by_key(),
            "email": message_keys(mailbox),
            "kafka": kafka_keys(kafka_bootstrap, settings.topics.alerts),
        }
        for channel, counts in got.items():
            t = tally(channel, expected[channel], counts)  # type: ignore[arg-type]
            assert t.delivered == ALERTS, f"{channel}: {t}"  # at least once each
            assert t.after_dedupe == ALERTS and t.duplicates_after_dedupe == 0, f"{channel}: {t}"
            assert set(counts) == expected[channel]
    finally:
        hook.close()
