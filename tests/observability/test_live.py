"""Observability during a real pipeline run: /metrics of the streaming process and the registry,
lag back to 0, health, and the live dashboard checked in headless Chromium against PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By

from eventlake.config import Settings
from eventlake.observability.dashboard import create_app
from eventlake.observability.server import serve
from eventlake.services import Endpoints, Stack, endpoints
from eventlake.services.dashboard import DashboardService, dashboard_health
from eventlake.services.postgres import PostgresService
from eventlake.services.process import wait_until
from tests import streams
from tests.conftest import MakeSettings
from tests.streaming.test_pipeline import START, pipeline_settings

pytestmark = pytest.mark.e2e
SOURCES = ("user_activity", "transactions")
REPO = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def names(samples: Samples) -> set[str]:
    return {n for n, _ in samples}


def send(settings: Settings, live: Endpoints, n: int, seed: int) -> None:
    summary = streams.send(settings, live, SOURCES, n, seed=seed, start_ms=START + seed * 3_600_000, faults=0.05)
    assert summary.delivered == n * len(SOURCES)


def pg_kpis(url: str) -> tuple[int, float]:
    """What the dashboard must show: events in the newest 30 minutes of activity; transaction volume."""
    with psycopg.connect(url) as conn:
        events = conn.execute(
            "SELECT coalesce(sum(events), 0) FROM gold_user_activity_1m"
            " WHERE window_start > (SELECT max(window_start) FROM gold_user_activity_1m) - interval '30 minutes'"
        ).fetchone()
        amount = conn.execute(
            "SELECT coalesce(sum(amount_sum), 0) FROM gold_transactions_1m"
            " WHERE window_start > (SELECT max(window_start) FROM gold_transactions_1m) - interval '30 minutes'"
        ).fetchone()
    assert events is not None and amount is not None
    return int(events[0]), float(amount[0])


def chromium() -> webdriver.Chrome:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "chromium and chromium-driver are installed by `make setup` (browser-deps)"
    options = Options()
    options.binary_location = binary
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1600,1300",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=ChromeService(executable_path=driver), options=options)


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    assert wait_until(check, timeout=timeout, interval=1.0), f"timed out waiting for {what}"


def test_metrics_health_and_dashboard_during_a_real_run(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Path
) -> None:
    settings = pipeline_settings(
        stack,
        make_settings,
        tmp_path,
        streaming={"trigger_s": 1.0},
        dashboard={"refresh_s": 1.0},
    )
    settings.topics.sources = SOURCES
    live = endpoints(settings)
    n = 400
    send(settings, live, n, seed=1)
    # Counters are per process, and other tests of this session streamed the same query names.
    read_before = {
        s: REGISTRY.get_sample_value("eventlake_stream_input_rows_total", {"query": f"pipeline_{s}"}) or 0
        for s in SOURCES
    }
    board = None
    try:
        with streams.jobs_running(settings, live) as failure:
            record = settings.home / "run" / "streaming.json"
            until(lambda: record.exists() or bool(failure), 120, "the streaming metrics endpoint")
            assert not failure, failure
            url = str(json.loads(record.read_text())["url"])

            def caught_up(expected: int) -> Callable[[], bool]:
                def check() -> bool:
                    assert not failure, failure
                    m = scrape(url)
                    return all(
                        value(m, "eventlake_stream_input_rows_total", query=f"pipeline_{s}")
                        == read_before[s] + expected
                        and value(m, "eventlake_kafka_consumer_lag", query=f"pipeline_{s}") == 0
                        for s in SOURCES
                    )

                return check

            until(caught_up(n), 420, "the first records through every layer")
            first = scrape(url)
            expected = {
                "eventlake_stream_input_rows_total",
                "eventlake_stream_processed_rows_per_second",
                "eventlake_stream_batch_duration_seconds_count",
                "eventlake_stream_state_rows",
                "eventlake_kafka_consumer_lag",
                "eventlake_sink_rows_written_total",
                "eventlake_sink_commit_seconds_count",
                "eventlake_dq_checked_rows_total",
                "eventlake_dq_failed_rows_total",
                "eventlake_dq_open_alerts",
                "eventlake_records_produced_total",  # this test's producer runs in the same process
                "eventlake_stream_watermark_delay_seconds",
            }
            assert expected <= names(first), expected - names(first)
            # Lag is per partition: every partition of both raw topics is reported.
            lag_series = [ls for (nm, ls) in first if nm == "eventlake_kafka_consumer_lag"]
            assert len(lag_series) == len(SOURCES) * settings.topics.raw_spec.partitions
            assert value(first, "eventlake_dq_failed_rows_total", source="transactions") > 0  # 5 % faults
            # PostgreSQL gold is the serving path's: its own process, its own endpoint.
            serving = scrape(str(json.loads((settings.home / "run" / "serving.json").read_text())["url"]))
            assert value(serving, "eventlake_sink_rows_written_total", sink="postgres") > 0
            assert value(serving, "eventlake_serving_records_total", outcome="applied") > 0
            assert value(serving, "eventlake_serving_records_total", outcome="invalid") > 0  # the 5 % faults

            health = httpx.get(f"{url}/health/ready", timeout=10)
            assert health.status_code == 200 and set(health.json()["checks"]) == {
                "kafka",
                "postgres",
                "queries",
                "restarts",
                "alerts",
            }
            status = Stack(settings).status()
            assert status["streaming"]["ok"] is True and status["streaming"]["url"] == url

            # More data: counters move on, lag returns to 0.
            send(settings, live, 200, seed=2)
            until(caught_up(n + 200), 300, "the second round")
            second = scrape(url)
            for name in (
                "eventlake_records_produced_total",
                "eventlake_dq_checked_rows_total",
                "eventlake_sink_rows_written_total",
                "eventlake_stream_batch_duration_seconds_count",
            ):
                assert value(second, name) > value(first, name), name
            registry = scrape(live.registry_url)
            assert value(registry, "eventlake_registry_requests_total") > 0

            # The dashboard, during the run, in a real browser.
            board = serve(
                create_app(settings, live.postgres_url), name="dashboard-test", home=tmp_path, host="127.0.0.1", port=0
            )
            until(lambda: pg_kpis(live.postgres_url)[0] > 0, 120, "gold rows")
            browser = chromium()
            try:
                browser.get(board.url)

                def shows_postgres() -> bool:
                    events, amount = pg_kpis(live.postgres_url)
                    shown = browser.find_element(By.ID, "kpi-events").text.replace(",", "")
                    money = browser.find_element(By.ID, "kpi-amount").text.replace(",", "")
                    return shown == str(events) and money != "\u2013" and abs(float(money) - amount) < 0.01

                until(shows_postgres, 120, "the dashboard to show the PostgreSQL figures")
                updates = int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-updates") or 0)
                until(
                    lambda: int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-updates") or 0) > updates,
                    30,
                    "a live update without reload",
                )
                for chart in ("chart-activity", "chart-transactions"):
                    element = browser.find_element(By.ID, chart)
                    assert element.find_elements(By.TAG_NAME, "canvas"), chart
                    assert int(element.get_attribute("data-points") or 0) > 0, chart
                queries = browser.find_element(By.ID, "tbl-queries").text
                assert "pipeline_transactions" in queries and "pipeline_user_activity" in queries
                assert "%" in browser.find_element(By.ID, "tbl-rules").text
                board_metrics = scrape(board.url)
                assert value(board_metrics, "eventlake_dashboard_snapshots_total") > 0
                shot = tmp_path / "dashboard.png"
                assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
                if target := os.environ.get("DASHBOARD_SCREENSHOT_TO"):
                    shutil.copy(shot, target)  # how docs/dashboard.png is refreshed
            finally:
                browser.quit()
    finally:
        if board is not None:
            board.stop()
    assert not failure, failure
    assert not (settings.home / "run" / "streaming.json").exists()  # the record goes with the process


def test_dashboard_readiness_follows_postgres(make_settings: MakeSettings) -> None:
    settings = make_settings("health", dashboard={"token": "s3cret-token"})
    pg, board = PostgresService(settings), DashboardService(settings)
    pg.start()
    try:
        board.start()
        url = board.endpoint()
        assert url is not None and dashboard_health(url).ok
        assert Stack(settings).status()["dashboard"]["url"] == url
        # Mutating endpoints need the token.
        assert httpx.post(f"{url}/api/alerts/1/resolve", timeout=10).status_code == 401
        wrong = httpx.post(f"{url}/api/alerts/1/resolve", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        right = httpx.post(f"{url}/api/alerts/1/resolve", headers={"Authorization": "Bearer s3cret-token"}, timeout=10)
        assert right.status_code == 404  # authorised; there is no such alert
        pg.stop()
        health = dashboard_health(url)
        assert not health.ok and "postgres" in health.detail
        ready = httpx.get(f"{url}/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["failing"] == ["postgres"]
        assert httpx.get(f"{url}/health/live", timeout=10).status_code == 200
        pg.start()
        until(lambda: dashboard_health(url).ok, 30, "ready again")
    finally:
        board.stop()
        pg.stop()


def test_dashboard_is_read_only_without_a_token(make_settings: MakeSettings, postgres_url: str) -> None:
    settings = make_settings("readonly")
    board = serve(create_app(settings, postgres_url), name="ro", home=settings.home, host="127.0.0.1", port=0)
    try:
        res = httpx.post(f"{board.url}/api/alerts/1/resolve", headers={"Authorization": "Bearer x"}, timeout=10)
        assert res.status_code == 403 and "EVENTLAKE_DASHBOARD_TOKEN" in res.text
        page = httpx.get(board.url, timeout=10).text
        # No CDN: every script and stylesheet is served by eventlake itself.
        assert "http" not in "".join(line for line in page.splitlines() if "src=" in line or "href=" in line)
        assert httpx.get(f"{board.url}/static/vendor/uPlot.iife.min.js", timeout=10).status_code == 200
    finally:
        board.stop()
