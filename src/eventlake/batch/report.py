"""The daily data-quality report: one UTC day's pass rates, quarantine, anomalies, freshness and volume.

Figures come from where they are recorded: rule results and anomalies from PostgreSQL
(``dq_metrics``, ``anomalies``), quarantine by reason, freshness and volume from the lake
(``quarantine/<source>``, ``silver/<source>``). The report is rendered to HTML, stored in
``dq_reports`` (one row per day: a rerun replaces it) and sent once through the alert channels
(Slack, email, the alerts topic; a rerun does not send it again unless asked to).

Sending is at-least-once like an alert's: a channel that fails (an SMTP answer lost after the relay
took the message) fails the task, and Airflow's retry sends the report again. Every send of one day's
report to one recipient set carries the same idempotency key (:func:`report_key`), so its email has
the same ``Message-ID`` (and its Slack post and alerts-topic record the same key): a receiver that
dedupes by it keeps one. A different recipient set is a different mailing, with its own key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from delta.tables import DeltaTable
from psycopg.types.json import Jsonb
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from eventlake import pg
from eventlake.alerting.channels import build_channels, channels
from eventlake.batch.days import Days
from eventlake.batch.writes import silver_between
from eventlake.config import Settings
from eventlake.streaming.paths import table

log = logging.getLogger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS dq_reports (
    day        date PRIMARY KEY,
    summary    jsonb NOT NULL,
    html       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
"""


@dataclass(frozen=True)
class RuleRate:
    source: str
    rule: str
    checked: int
    failed: int

    @property
    def pass_rate(self) -> float:
        return 1.0 - self.failed / self.checked if self.checked else 1.0


@dataclass(frozen=True)
class SourceDay:
    source: str
    events: int  # silver rows with event times in the day
    baseline: float  # average per day over the days before
    newest: str | None  # newest event time of the day (ISO), None: no events
    quarantined: dict[str, int] = field(default_factory=dict)  # reason -> rows

    @property
    def volume_ratio(self) -> float | None:
        return self.events / self.baseline if self.baseline else None


@dataclass(frozen=True)
class Report:
    day: dt.date
    rules: list[RuleRate]
    sources: list[SourceDay]
    anomalies: dict[str, int]  # detector -> windows flagged
    generated_at: dt.datetime

    @property
    def failing_rules(self) -> list[RuleRate]:
        return [r for r in self.rules if r.failed]

    @property
    def severity(self) -> str:
        """``warning`` when anything needs a look (a rule failed rows, an anomaly), else ``info``."""
        return "warning" if self.failing_rules or any(self.anomalies.values()) else "info"

    def summary(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "rules": [{**asdict(r), "pass_rate": round(r.pass_rate, 6)} for r in self.rules],
            "sources": [{**asdict(s), "volume_ratio": s.volume_ratio} for s in self.sources],
            "anomalies": self.anomalies,
            "generated_at": self.generated_at.isoformat(),
        }

    def text(self) -> str:
        """The short form (Slack, the plain-text part of the email)."""
        lines = [f"Data quality for {self.day}:"]
        for s in self.sources:
            ratio = f"{s.volume_ratio:.2f}x the {s.baseline:.0f}/day baseline" if s.volume_ratio else "no baseline"
            bad = sum(s.quarantined.values())
            lines.append(f"- {s.source}: {s.events} events ({ratio}), {bad} quarantined, newest {s.newest or '-'}")
        worst = sorted(self.failing_rules, key=lambda r: r.pass_rate)[:5]
        lines += [
            f"- rule {r.source}/{r.rule}: {r.pass_rate:.2%} pass ({r.failed} of {r.checked} failed)" for r in worst
        ]
        lines.append(f"- anomalies: {sum(self.anomalies.values())}")
        return "\n".join(lines)

    def html(self) -> str:
        e = html.escape

        def rows(cells: list[list[object]]) -> str:
            return "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in cells)

        def head(*names: str) -> str:
            return "<tr>" + "".join(f"<th align='left'>{e(n)}</th>" for n in names) + "</tr>"

        volume = rows(
            [
                [
                    s.source,
                    s.events,
                    f"{s.baseline:.0f}",
                    f"{s.volume_ratio:.2f}" if s.volume_ratio else "-",
                    s.newest or "-",
                ]
                for s in self.sources
            ]
        )
        rules = rows([[r.source, r.rule, r.checked, r.failed, f"{r.pass_rate:.4%}"] for r in self.rules])
        quarantine = rows([[s.source, reason, n] for s in self.sources for reason, n in sorted(s.quarantined.items())])
        anomalies = rows([[d, n] for d, n in sorted(self.anomalies.items())])
        return (
            f"<html><body><h2>eventlake data quality, {e(str(self.day))}</h2>"
            f"<h3>Volume and freshness</h3><table>"
            f"{head('source', 'events', 'baseline/day', 'ratio', 'newest event')}{volume}</table>"
            f"<h3>Rules</h3><table>{head('source', 'rule', 'checked', 'failed', 'pass rate')}{rules}</table>"
            f"<h3>Quarantine by reason</h3><table>{head('source', 'reason', 'rows')}{quarantine}</table>"
            f"<h3>Anomalies</h3><table>{head('detector', 'windows')}{anomalies}</table>"
            f"<p>generated {e(self.generated_at.isoformat())}</p></body></html>"
        )


def build_report(spark: SparkSession, settings: Settings, postgres_url: str, day: dt.date) -> Report:
    """Gather the figures of ``day``."""
    lo, hi = Days.one(day).start, Days.one(day).end
    with pg.connect(postgres_url, answer_timeout_s=pg.BATCH_ANSWER_TIMEOUT_S) as conn:
        rules = [
            RuleRate(s, r, int(c), int(f))
            for s, r, c, f in conn.execute(
                "SELECT source, rule, sum(checked), sum(failed) FROM dq_metrics"
                " WHERE ts >= %s AND ts < %s GROUP BY source, rule ORDER BY source, rule",
                (lo, hi),
            )
        ]
        anomalies: dict[str, int] = dict(
            conn.execute(
                "SELECT detector, count(*) FROM anomalies WHERE window_start >= %s AND window_start < %s"
                " GROUP BY detector",
                (lo, hi),
            ).fetchall()
        )
    return Report(
        day,
        rules,
        [_source_day(spark, settings, s, day) for s in settings.topics.sources],
        anomalies,
        dt.datetime.now(dt.UTC),
    )


def _source_day(spark: SparkSession, settings: Settings, source: str, day: dt.date) -> SourceDay:
    days = settings.batch.report_baseline_days
    lo, hi = Days.one(day).start, Days.one(day).end
    events, before, newest = 0, 0, None
    silver = table(settings, "silver", source)
    if DeltaTable.isDeltaTable(spark, silver):
        t = F.col("event_time")
        span = silver_between(spark, settings, source, lo - dt.timedelta(days=days), hi)
        row = span.agg(
            F.count_if(t >= F.lit(lo)).alias("events"),
            F.count_if(t < F.lit(lo)).alias("before"),
            F.max(F.when(t >= F.lit(lo), t)).alias("newest"),
        ).head()
        assert row is not None
        events, before = int(row["events"]), int(row["before"])
        newest = row["newest"].replace(tzinfo=dt.UTC).isoformat() if row["newest"] is not None else None
    quarantined: dict[str, int] = {}
    path = table(settings, "quarantine", source)
    if DeltaTable.isDeltaTable(spark, path):
        q = F.col("quarantined_at")
        for r in (
            spark.read.format("delta")
            .load(path)
            .where((q >= F.lit(lo)) & (q < F.lit(hi)))
            .groupBy("reason")
            .count()
            .collect()
        ):
            quarantined[str(r["reason"])] = int(r["count"])
    return SourceDay(source, events, before / days, newest, quarantined)


def store_report(url: str, report: Report) -> None:
    """Keep the report (a rerun of the day replaces it; whether it was sent stays recorded)."""
    with pg.connect(url, answer_timeout_s=pg.BATCH_ANSWER_TIMEOUT_S) as conn:
        conn.execute(DDL)
        conn.execute(
            "INSERT INTO dq_reports (day, summary, html) VALUES (%s, %s, %s)"
            " ON CONFLICT (day) DO UPDATE SET summary = excluded.summary, html = excluded.html, created_at = now()",
            (report.day, Jsonb(report.summary()), report.html()),
        )


def report_key(settings: Settings, day: dt.date) -> str:
    """The idempotency key of ``day``'s report to the configured recipients: the same on every
    (re)send, whatever process sends it; the ``Message-ID`` of its email is ``<key@sender domain>``."""
    recipients = ",".join(sorted({a.lower() for a in settings.alert.recipients}))
    return f"dq-report-{day.isoformat()}-{hashlib.sha256(recipients.encode()).hexdigest()[:16]}"


def send_report(
    url: str, settings: Settings, kafka_bootstrap: str, report: Report, *, resend: bool = False
) -> list[str]:
    """Send the stored report through every alert channel, once per day (``resend``: again).
    Returns the channels it went to (empty: it had been sent before). A channel that fails raises,
    and the report stays unsent, so a retry sends it."""
    with pg.connect(url, answer_timeout_s=pg.BATCH_ANSWER_TIMEOUT_S) as conn:
        row = conn.execute("SELECT sent_at FROM dq_reports WHERE day = %s", (report.day,)).fetchone()
        if row is None:
            raise ValueError(f"no stored report for {report.day}: store it first")
        if row[0] is not None and not resend:
            log.info("report already sent", extra={"day": str(report.day), "sent_at": row[0].isoformat()})
            return []
    at = report.generated_at.isoformat()
    payload = {
        "kind": "report",
        "key": f"dq_report:{report.day}",
        "severity": report.severity,
        "message": report.text(),
        "first_seen": at,
        "last_seen": at,
        "html": report.html(),
        "idempotency_key": report_key(settings, report.day),
    }
    senders = build_channels(settings, kafka_bootstrap)
    names = channels(settings)
    try:
        for name in names:
            senders[name].send(payload)
    finally:
        for sender in senders.values():
            sender.close()
    with pg.connect(url, answer_timeout_s=pg.BATCH_ANSWER_TIMEOUT_S) as conn:
        conn.execute("UPDATE dq_reports SET sent_at = now() WHERE day = %s", (report.day,))
    log.info("report sent", extra={"day": str(report.day), "channels": names})
    return names


def dq_report(
    spark: SparkSession,
    settings: Settings,
    postgres_url: str,
    kafka_bootstrap: str,
    day: dt.date,
    *,
    resend: bool = False,
) -> tuple[Report, list[str]]:
    """Build, store and send the report of ``day``."""
    report = build_report(spark, settings, postgres_url, day)
    store_report(postgres_url, report)
    return report, send_report(postgres_url, settings, kafka_bootstrap, report, resend=resend)
