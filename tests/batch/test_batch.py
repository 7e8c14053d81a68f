"""The batch jobs on a real lake made by a small streaming run (real Kafka, registry, Spark, Delta,
PostgreSQL, a real SMTP server and a real HTTP receiver for Slack). The tests share one lake and run
in file order; each leaves it as it found it (same rows), the next one builds on that."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import psycopg
import pytest
from delta.tables import DeltaTable as SparkDeltaTable

from eventlake.batch.backfill import backfill
from eventlake.batch.days import Days
from eventlake.batch.maintenance import lake_tables, optimize_and_vacuum, prune_bookkeeping
from eventlake.batch.report import dq_report
from eventlake.batch.rollups import rollups
from eventlake.errors import EventlakeError
from eventlake.streaming.paths import table
from eventlake.streaming.specs import ROLLUP_SPECS, SPECS_BY_SOURCE
from eventlake.streaming.state import prior_maxima
from tests.lakes import (
    JAN1,
    JAN2,
    SOURCES,
    START,
    Lake,
    assert_rows_close,
    exact_rows,
    lake_rows,
    pg_rows,
)
from tests.streaming import recompute
from tests.streaming.test_pipeline import assert_gold_matches, delta_rows

pytestmark = pytest.mark.e2e


def test_rollups_are_exact_and_a_rerun_changes_nothing(lake: Lake, spark: Any) -> None:
    results = rollups(spark, lake.settings, lake.live.postgres_url, Days(JAN1, JAN2))
    assert {r.table for r in results} == {s.table for s in ROLLUP_SPECS}
    assert all(r.rows > 0 for r in results)
    for source in SOURCES:
        records = lake.records(source)
        # Both days and both hours around midnight have events.
        assert {recompute.day(r["event_time"]).date() for r in records} == {JAN1, JAN2}
        for grain, bucket in (("1h", recompute.hour), ("1d", recompute.day)):
            name = f"gold_{source}_{grain}"
            assert_gold_matches(lake.settings, source, recompute.gold(source, records, bucket), table=name)

    before = {s.table: pg_rows(lake.live.postgres_url, s.table) for s in ROLLUP_SPECS}
    lake_before = {s.table: lake_rows(lake.settings, "gold", s.table) for s in ROLLUP_SPECS}
    again = rollups(spark, lake.settings, lake.live.postgres_url, Days.one(JAN1))
    assert all(r.rows > 0 for r in again)
    for s in ROLLUP_SPECS:
        assert_rows_close(pg_rows(lake.live.postgres_url, s.table), before[s.table], s.table)
        assert_rows_close(lake_rows(lake.settings, "gold", s.table), lake_before[s.table], s.table)


def test_maintenance_compacts_keeps_rows_and_the_stream_resumes_exactly_once(lake: Lake, spark: Any) -> None:
    settings, url = lake.settings, lake.live.postgres_url
    # A round of micro-batches first: new small files, whatever maintenance ran on this lake before.
    lake.produce(300, seed=5, start_ms=START + 15_000)
    names = [t.name for t in lake_tables(settings)]
    before = {n: exact_rows(settings, *n.split("/")) for n in names}
    reports = {r.table: r for r in optimize_and_vacuum(spark, settings)}
    for source in SOURCES:
        for layer in ("bronze", "silver"):
            r = reports[f"{layer}/{source}"]
            assert r.files_before > 1 and r.files_after < r.files_before, r
    for n, rows in before.items():
        assert exact_rows(settings, *n.split("/")) == rows, n

    # Bookkeeping pruned as if a year had passed: each query keeps its newest batch and its horizon.
    queries = [f"pipeline_{s}" for s in SOURCES]

    def horizons() -> dict[str, dict[int, dt.datetime]]:
        with psycopg.connect(url) as conn:
            return {q: prior_maxima(conn, q, 1 << 40) for q in queries}

    def merged() -> dict[str, dt.datetime]:
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT query, max(merged_through) FROM eventlake_stream_gold GROUP BY query")
            return dict(rows.fetchall())

    def exported() -> dict[str, int]:
        with psycopg.connect(url) as conn:
            return dict(conn.execute("SELECT query, max(batch_id) FROM eventlake_stream_dq GROUP BY query").fetchall())

    prior, through, dq = horizons(), merged(), exported()
    assert set(through) == set(queries) == set(dq), (through, dq)
    year_on = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    pruned = {r.table: r.deleted for r in prune_bookkeeping(url, settings, now=year_on)}
    assert pruned["dq_metrics"] > 0 and pruned["eventlake_stream_watermarks"] > 0, pruned
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM dq_metrics").fetchone() == (0,)
        newest = dict(
            conn.execute("SELECT query, max(batch_id) FROM eventlake_stream_batches GROUP BY query").fetchall()
        )
        kept = dict(conn.execute("SELECT query, count(*) FROM eventlake_stream_batches GROUP BY query").fetchall())
    assert set(newest) == set(queries) and all(n >= 1 for n in kept.values())
    assert horizons() == prior
    assert merged() == through  # how far Delta gold is merged: what the next batch starts from
    assert exported() == dq  # and Delta quality/metrics: where its next export starts

    # The stream restarts on the compacted, vacuumed lake: new records, exactly once, every layer.
    lake.produce(300, seed=4, start_ms=START + 20_000)
    for source in SOURCES:
        assert_gold_matches(settings, source, recompute.gold(source, lake.records(source)))


def test_backfill_rebuilds_silver_and_gold_equal_to_the_stream(lake: Lake, spark: Any) -> None:
    url = lake.live.postgres_url
    gold_tables = [s.table for src in SOURCES for s in SPECS_BY_SOURCE[src]]
    silver = {s: exact_rows(lake.settings, "silver", s) for s in SOURCES}
    gold = {t: pg_rows(url, t) for t in gold_tables}
    gold_lake = {t: lake_rows(lake.settings, "gold", t) for t in gold_tables}
    assert all(silver.values()) and all(gold.values())

    # Lose both days downstream of bronze: silver rows and gold windows.
    for source in SOURCES:
        SparkDeltaTable.forPath(spark, table(lake.settings, "silver", source)).delete("event_time >= '2026-01-01'")
    with psycopg.connect(url) as conn:
        for t in gold_tables:
            conn.execute(f"DELETE FROM {t}")
    assert all(not exact_rows(lake.settings, "silver", s) for s in SOURCES)

    for _ in range(2):  # the second run finds the rebuilt range and leaves it as it is
        results = backfill(spark, lake.settings, url, lake.live.registry_url, Days(JAN1, JAN2))
        assert {r.source: r.silver_rows for r in results} == {s: sum(silver[s].values()) for s in SOURCES}
        for source in SOURCES:
            assert exact_rows(lake.settings, "silver", source) == silver[source], source
        for t in gold_tables:
            assert_rows_close(pg_rows(url, t), gold[t], t)
            assert_rows_close(lake_rows(lake.settings, "gold", t), gold_lake[t], t)


def test_backfill_refuses_a_range_the_stream_may_still_change(lake: Lake, spark: Any) -> None:
    today = dt.datetime.now(dt.UTC).date()
    with pytest.raises(EventlakeError, match="not final yet"):
        backfill(spark, lake.settings, lake.live.postgres_url, lake.live.registry_url, Days.one(today))


def test_dq_report_is_stored_and_sent_once(lake: Lake, spark: Any) -> None:
    settings, url = lake.settings, lake.live.postgres_url
    today = dt.datetime.now(dt.UTC).date()
    hooks, mails = len(lake.webhook.bodies), len(lake.mailbox.messages)
    # Today's run: rule results of the batches that ran today, quarantine by reason. (The Airflow
    # tests may have sent today's report from this lake already: send it again.)
    report, sent = dq_report(spark, settings, url, lake.live.kafka_bootstrap, today, resend=True)
    assert set(sent) == {"kafka", "slack", "email"}
    for source in SOURCES:
        quarantined = Counter(r["reason"] for r in delta_rows(settings, "quarantine", source))
        day = next(s for s in report.sources if s.source == source)
        assert day.quarantined == dict(quarantined) and sum(quarantined.values()) > 0
    with psycopg.connect(url) as conn:
        checked = dict(
            ((s, r), (int(c), int(f)))
            for s, r, c, f in conn.execute(
                "SELECT source, rule, sum(checked), sum(failed) FROM dq_metrics GROUP BY 1, 2"
            )
        )
        stored = conn.execute("SELECT summary, html, sent_at FROM dq_reports WHERE day = %s", (today,)).fetchone()
    assert {(r.source, r.rule): (r.checked, r.failed) for r in report.rules} == checked
    assert stored is not None and stored[2] is not None and "<h2>eventlake data quality" in stored[1]
    assert stored[0]["day"] == today.isoformat()
    assert len(lake.webhook.bodies) == hooks + 1 and f"Data quality for {today}" in json.dumps(lake.webhook.bodies[-1])
    assert len(lake.mailbox.messages) == mails + 1
    mail = lake.mailbox.messages[-1][1]
    assert f"dq_report:{today}" in mail["Subject"]
    assert "<h2>eventlake data quality" in mail.get_body(preferencelist=("html",)).get_content()

    # A rerun replaces the stored report and sends nothing.
    _, again = dq_report(spark, settings, url, lake.live.kafka_bootstrap, today)
    assert again == [] and len(lake.webhook.bodies) == hooks + 1 and len(lake.mailbox.messages) == mails + 1

    # The events' own day: volume and freshness from silver.
    jan1, _ = dq_report(spark, settings, url, lake.live.kafka_bootstrap, JAN1)
    for source in SOURCES:
        day = next(s for s in jan1.sources if s.source == source)
        expected = sum(1 for r in lake.records(source) if r["event_time"].date() == JAN1)
        assert day.events == expected and day.baseline == 0 and day.newest is not None
        assert day.newest.startswith("2026-01-01T23:59")
    assert len(lake.webhook.bodies) == hooks + 2
