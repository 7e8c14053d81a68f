"""The speed figures of the live dashboard: batch durations from successive scrapes of the streaming
histogram, and window end -> final row in PostgreSQL from the gold tables. No Spark, no browser."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest, start_http_server

from eventlake.observability.dashboard import (
    LATENCY_WINDOWS,
    BatchDurations,
    end_to_end,
    histograms,
    pipeline,
    streaming_metrics_url,
)
from eventlake.observability.metrics import STREAM_BATCH_BUCKETS
from eventlake.services.postgres import PostgresService
from eventlake.streaming.specs import GOLD_SPECS, ensure_gold_table
from tests.conftest import MakeSettings

QUERY = "pipeline_transactions"


def scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_batch_figures_cover_the_recent_batches_only() -> None:
    registry = CollectorRegistry()
    h = Histogram(
        "eventlake_stream_batch_duration_seconds", "d", ["query"], buckets=STREAM_BATCH_BUCKETS, registry=registry
    )
    for _ in range(20):
        h.labels(QUERY).observe(40.0)  # slow start-up batches
    durations = BatchDurations(span_s=60)
    first = durations.add(1000.0, histograms(scrape(registry))[1])[QUERY]
    assert first["batch_scope"] == "since start" and first["batch_n"] == 20
    assert first["batch_mean_s"] == pytest.approx(40.0)
    assert first["batch_p95_s"] == pytest.approx(30 + 30 * 0.95)  # interpolated within the bucket (30, 60]
    for _ in range(19):
        h.labels(QUERY).observe(0.9)
    h.labels(QUERY).observe(2.5)
    recent = durations.add(1030.0, histograms(scrape(registry))[1])[QUERY]
    assert recent["batch_scope"] == "recent" and recent["batch_n"] == 20 and recent["batch_span_s"] == 30
    assert recent["batch_mean_s"] == pytest.approx((19 * 0.9 + 2.5) / 20)
    assert 0.75 < recent["batch_p95_s"] <= 1.0  # the 19th of 20 batches lies in (0.75, 1]
    assert recent["batches_per_min"] == pytest.approx(40)
    assert recent["avg_batch_s"] == pytest.approx((20 * 40 + 19 * 0.9 + 2.5) / 40)  # since start
    # Nothing new for a minute: back to the figures since start, said so.
    idle = durations.add(1100.0, histograms(scrape(registry))[1])[QUERY]
    assert idle["batch_scope"] == "since start" and idle["batch_n"] == 40 and idle["batches_per_min"] == 0


def test_a_restarted_process_is_not_a_negative_delta() -> None:
    durations = BatchDurations(span_s=60)
    for t, n in ((0.0, 50), (10.0, 3)):  # the streaming process restarted between the scrapes
        registry = CollectorRegistry()
        h = Histogram(
            "eventlake_stream_batch_duration_seconds", "d", ["query"], buckets=STREAM_BATCH_BUCKETS, registry=registry
        )
        for _ in range(n):
            h.labels(QUERY).observe(1.2)
        figures = durations.add(t, histograms(scrape(registry))[1])[QUERY]
    assert figures["batch_scope"] == "since start" and figures["batch_n"] == 3
    assert figures["batch_mean_s"] == pytest.approx(1.2)


def test_latency_is_window_end_to_final_row_over_closed_windows(make_settings: MakeSettings) -> None:
    settings = make_settings("dashboard-speed")
    pg = PostgresService(settings)
    pg.start()
    try:
        url = pg.endpoint()
        assert url is not None
        for spec in GOLD_SPECS:
            ensure_gold_table(url, spec)
        lateness = 120.0
        newest = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
        with psycopg.connect(url) as conn:
            with conn.cursor() as cur:
                for m in range(30):
                    ws = newest - dt.timedelta(minutes=m)
                    we = ws + dt.timedelta(minutes=1)
                    # closed windows took 2 s (fuel) and 4 s (grocery); open ones would read 0.5 s
                    for cat, s in (("fuel", 2.0), ("grocery", 4.0)):
                        delay = s if we <= newest - dt.timedelta(seconds=lateness) else 0.5
                        cur.execute(
                            "INSERT INTO gold_transactions_1m (window_start, window_end, merchant_category, txn_count,"
                            " amount_sum, declined_count, updated_at) VALUES (%s, %s, %s, 1, 1, 0, %s)",
                            (ws, we, cat, we + dt.timedelta(seconds=delay)),
                        )
            figures = end_to_end(conn, lateness, 30)
        txn = next(t for t in figures["tables"] if t["table"] == "gold_transactions_1m")
        assert txn["windows"] == LATENCY_WINDOWS and txn["rows"] == 2 * LATENCY_WINDOWS
        assert txn["p50_s"] == pytest.approx(3.0) and txn["p99_s"] == pytest.approx(4.0, abs=0.05)
        # event times of 2026-01-01 against PostgreSQL's clock: the age of that "replay"
        expected_ago = (dt.datetime.now(dt.UTC) - newest - dt.timedelta(seconds=60.5)).total_seconds()
        assert txn["updated_ago_s"] == pytest.approx(expected_ago, abs=30)
        empty = next(t for t in figures["tables"] if t["table"] == "gold_user_activity_1m")
        assert empty["rows"] == 0 and empty["p99_s"] is None and empty["updated_ago_s"] is None
        assert figures["updated_ago_s"] == txn["updated_ago_s"]
    finally:
        pg.stop()


def test_the_pipeline_panel_reads_a_configured_streaming_url(make_settings: MakeSettings) -> None:
    """A dashboard in another container than the streaming process (Compose, Kubernetes) has no
    ``<home>/run/streaming.json``: ``dashboard.streaming_url`` names the endpoint instead."""
    registry = CollectorRegistry()
    h = Histogram(
        "eventlake_stream_batch_duration_seconds", "d", ["query"], buckets=STREAM_BATCH_BUCKETS, registry=registry
    )
    h.labels(QUERY).observe(1.5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert streaming_metrics_url(make_settings()) is None, "no record, no setting: nothing runs"
        settings = make_settings(dashboard={"streaming_url": url + "/"})
        assert streaming_metrics_url(settings) == url
        panel = pipeline(streaming_metrics_url(settings))
        assert panel["running"] is True
        assert panel["queries"][QUERY]["batches"] == 1
    finally:
        server.shutdown()
        thread.join(5)
