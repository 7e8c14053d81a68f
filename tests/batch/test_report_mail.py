"""Sending the daily DQ report (no Spark: the report is built by hand): real PostgreSQL, Kafka and an
aiosmtpd relay whose first answer is lost, so the send fails and is retried, as an Airflow task retry
would."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest

from eventlake.batch.report import Report, RuleRate, SourceDay, report_key, send_report, store_report
from eventlake.config import load_settings
from tests.alerting.receivers import Mailbox, free_port, smtp_server
from tests.alerting.test_alerting import alert_settings, topic_messages
from tests.conftest import MakeSettings

DAY = dt.date(2026, 11, 30)


def report(day: dt.date) -> Report:
    return Report(
        day,
        [RuleRate("transactions", "amount_range", 1000, 3)],
        [SourceDay("transactions", 1000, 950.0, f"{day}T23:59:58+00:00", {"out_of_range:amount": 3})],
        {"zscore": 1},
        dt.datetime(2026, 12, 1, 1, 0, 5, tzinfo=dt.UTC),
    )


def test_a_retried_report_email_carries_the_same_message_id(
    make_settings: MakeSettings, kafka_bootstrap: str, fresh_db: str
) -> None:
    mailbox = Mailbox(delays_s=[1.5])  # accepts the first message, answers after the client gave up
    port = free_port()
    settings = alert_settings(
        make_settings, kafka_bootstrap, smtp={"host": "127.0.0.1", "port": port, "timeout_s": 0.3}
    )
    first, second = report(DAY), report(DAY + dt.timedelta(days=1))
    store_report(fresh_db, first)
    store_report(fresh_db, second)
    with smtp_server(port, mailbox):
        with pytest.raises(OSError):  # the lost answer: the task fails
            send_report(fresh_db, settings, kafka_bootstrap, first)
        with psycopg.connect(fresh_db) as conn:
            assert conn.execute("SELECT sent_at FROM dq_reports WHERE day = %s", (DAY,)).fetchone() == (None,)
        assert send_report(fresh_db, settings, kafka_bootstrap, first) == ["kafka", "email"]  # the retry
        assert send_report(fresh_db, settings, kafka_bootstrap, first) == []  # sent: a rerun sends nothing
        assert send_report(fresh_db, settings, kafka_bootstrap, second) == ["kafka", "email"]
    key, other = report_key(settings, DAY), report_key(settings, second.day)
    assert key != other
    # The relay got the day's report twice, under one Message-ID (a deduping MTA or archive keeps one).
    assert mailbox.by_message_id() == {f"<{key}@example.com>": 2, f"<{other}@example.com>": 1}
    assert [m["Subject"] for _, m in mailbox.messages] == [
        f"[eventlake] REPORT warning: dq_report:{d}" for d in (DAY, DAY, second.day)
    ]
    on_topic = topic_messages(kafka_bootstrap, settings.topics.alerts, 3)
    assert [m["idempotency_key"] for m in on_topic] == [key, key, other]


def test_the_report_key_is_per_day_and_recipient_set(tmp_path: Path) -> None:
    def key(email_to: str, day: dt.date = DAY) -> str:
        return report_key(load_settings(home=tmp_path, alert={"email_to": email_to}), day)

    base = key("oncall@example.com, data@example.com")
    assert base.startswith(f"dq-report-{DAY}-")
    assert key("Data@example.com,oncall@example.com") == base  # the same set, in any order or case
    assert key("oncall@example.com") != base  # another set: another mailing
    assert key("oncall@example.com, data@example.com", DAY + dt.timedelta(days=1)) != base
