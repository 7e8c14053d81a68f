"""Duplicate alert deliveries per 100 alerts when the dispatcher is killed -9, at real receivers.

A throw-away stack (Kafka, PostgreSQL) under a temporary home; ``--alerts`` alert episodes queued
(one firing notification each, to Slack, email and Kafka); ``python -m eventlake.alerting.dispatcher``
run as a subprocess and killed -9 at a random point (0..``--window-s`` after it delivered something)
again and again until nothing is pending. Receivers: an HTTP server standing in for Slack's webhook
and aiosmtpd (both record a request when it arrives and answer ``--delay-s`` later, as real receivers
take a moment) and the Kafka alerts topic. Per channel it prints raw deliveries, duplicates (raw minus
alerts delivered) and duplicates left after dedupe by the idempotency key (Idempotency-Key header,
Message-ID, Kafka header), per 100 alerts; the keyless count is the baseline of the same run.

Run: ``.venv/bin/python bench/alerts.py [--alerts 100] [--window-s 0.3] [--delay-s 0.03] [--seed 15]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the receivers and the kill loop are the tests' own (tests/alerting)

from tests.alerting.killing import (  # noqa: E402
    Tally,
    deliver_through_kills,
    dispatcher_env,
    expected_keys,
    kafka_keys,
    queue_alerts,
    tally,
)
from tests.alerting.receivers import Mailbox, Webhook, free_port, smtp_server  # noqa: E402

from eventlake.config import load_settings  # noqa: E402
from eventlake.kafka.admin import admin_client, provision_topics  # noqa: E402
from eventlake.services import Stack, endpoints  # noqa: E402


def per_100(n: int, alerts: int) -> float:
    return 100.0 * n / alerts if alerts else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--window-s", type=float, default=0.3, help="kill at random 0..this after a delivery")
    parser.add_argument("--delay-s", type=float, default=0.03, help="receivers answer this long after accepting")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--max-kills", type=int, default=10_000)
    args = parser.parse_args()
    hook, mailbox, port = Webhook(delay_s=args.delay_s), Mailbox(delay_s=args.delay_s), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as home:
        tag = f"b{uuid.uuid4().hex[:6]}"
        settings = load_settings(
            home=Path(home),
            topics={"alerts": f"{tag}.alerts"},
            slack={"webhook_url": hook.url, "timeout_s": 5},
            smtp={"host": "127.0.0.1", "port": port, "timeout_s": 5},
            alert={
                "email_to": "oncall@example.com",
                "email_from": "eventlake@example.com",
                "poll_s": 0.05,
                "retry_base_s": 0.1,
                "retry_max_s": 1,
            },
        )
        stack = Stack(settings)
        stack.up()
        try:
            live = endpoints(settings)
            provision_topics(
                admin_client(live.kafka_bootstrap), {settings.topics.alerts: settings.topics.alerts_spec}, 1
            )
            url = live.postgres_url
            queue_alerts(url, settings, args.alerts)
            expected = expected_keys(url)
            t = time.monotonic()
            with smtp_server(port, mailbox):
                run = deliver_through_kills(
                    dispatcher_env(settings, url, live.kafka_bootstrap),
                    url,
                    lambda: hook.calls + len(mailbox.messages),
                    random.Random(args.seed),
                    max_kills=args.max_kills,
                    window_s=args.window_s,
                    log=Path(home) / "dispatcher.log",
                    timeout_s=1800,
                )
            took = time.monotonic() - t
            emails: dict[str | None, int] = {}
            for mid, n in mailbox.by_message_id().items():
                key = mid.strip().strip("<>").rpartition("@")[0] if mid else None
                emails[key] = emails.get(key, 0) + n
            tallies: list[Tally] = [
                tally("slack", expected["slack"], hook.by_key()),
                tally("email", expected["email"], emails),  # type: ignore[arg-type]
                tally("kafka", expected["kafka"], kafka_keys(live.kafka_bootstrap, settings.topics.alerts)),
            ]
        finally:
            stack.down()
            hook.close()
    print(
        f"alerts kill9 {args.alerts} alerts x 3 channels delivered through {run.kills} kill -9"
        f" ({run.spawns} dispatcher processes) in {took:.1f} s"
    )
    total_dup = total_after = 0
    for x in tallies:
        total_dup += x.duplicates
        total_after += x.duplicates_after_dedupe
        print(
            f"alerts kill9 {x.channel}: raw {x.raw} deliveries for {x.alerts} alerts, missing"
            f" {x.alerts - x.delivered}, duplicates {x.duplicates} ({per_100(x.duplicates, x.alerts):.1f} per 100"
            f" alerts), after dedupe by key {x.duplicates_after_dedupe}"
            f" ({per_100(x.duplicates_after_dedupe, x.alerts):.1f} per 100)"
        )
    n = 3 * args.alerts
    print(
        f"alerts kill9 all channels: duplicates {per_100(total_dup, n):.1f} per 100 deliveries without dedupe"
        f" (baseline), {per_100(total_after, n):.1f} after dedupe by idempotency key"
    )


if __name__ == "__main__":
    main()
