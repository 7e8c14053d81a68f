"""The live web dashboard: KPIs from the PostgreSQL gold tables, pipeline health, data quality.

``GET /`` is a static page (uPlot, vendored from npm at setup: no CDN at run time) that listens
to ``GET /api/events`` (server-sent events, one snapshot every ``dashboard.refresh_s``, computed
once for all clients; beyond ``dashboard.max_clients`` clients: 503 + ``Retry-After``) and
redraws without reloading. ``GET /api/snapshot`` is the same JSON once (the shared one while fresh).
PostgreSQL is reached through a pool of ``dashboard.pool_size`` connections. Read-only, except
``POST /api/alerts/{id}/resolve``, which needs ``Authorization: Bearer <dashboard.token>`` and is
disabled when no token is configured.

Each chart covers the last ``dashboard.window_minutes`` before the newest window *of its table*
(not before now), so replays and simulated clocks show their data too.

Speed, as the page shows it:

* micro-batch duration per query (mean and p95): from the streaming process's
  ``eventlake_stream_batch_duration_seconds`` histogram, over the batches that ended in the last
  ``BATCH_SPAN_S`` seconds (the difference between two scrapes; p95 interpolated within the
  histogram's buckets as Prometheus' ``histogram_quantile`` does), or since the process started
  when no batch ended in that span;
* end-to-end latency per gold table, "window end -> final row in PostgreSQL": for every row of the
  last ``LATENCY_WINDOWS`` closed windows, ``updated_at`` of its last upsert minus ``window_end``
  (p50/p99). A window counts as closed once its end is ``streaming.allowed_lateness_s`` behind the
  table's newest window, i.e. behind the watermark: no on-time event can change it any more. It
  compares PostgreSQL's clock with event time, so for a replayed historical stream the figure is
  the replay's age, not the pipeline's speed;
* how long ago the newest gold row was upserted (PostgreSQL's ``now() - max(updated_at)`` over the
  charted windows).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import psycopg
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool
from starlette.types import Receive, Scope, Send

from eventlake import pg
from eventlake.config import Settings
from eventlake.observability.metrics import DASHBOARD_SNAPSHOTS
from eventlake.observability.server import Check, add_health
from eventlake.observability.snapshots import Slot, SnapshotHub
from eventlake.quality.report import open_alerts, rule_rates
from eventlake.quality.store import ensure_quality_tables
from eventlake.streaming.specs import GOLD_SPECS, GoldSpec, ensure_gold_table

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: batch figures cover the batches that ended in this many seconds before the scrape
BATCH_SPAN_S = 60.0
#: the end-to-end latency percentiles cover the rows of this many closed windows per gold table
LATENCY_WINDOWS = 10


def _since(conn: psycopg.Connection[Any], table: str, minutes: int) -> dt.datetime | None:
    row = conn.execute(f"SELECT max(window_start) FROM {table}").fetchone()  # noqa: S608 - fixed table names
    return None if row is None or row[0] is None else row[0] - dt.timedelta(minutes=minutes)


def _epoch(t: dt.datetime) -> float:
    return t.timestamp()


def _series(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """[(window_start, key, value)] -> {"t": [epoch...], "series": {key: [value or None per t]}}."""
    times = sorted({r[0] for r in rows})
    index = {t: i for i, t in enumerate(times)}
    series: dict[str, list[float | None]] = {}
    for t, key, value in rows:
        series.setdefault(str(key), [None] * len(times))[index[t]] = None if value is None else float(value)
    return {"t": [_epoch(t) for t in times], "series": dict(sorted(series.items()))}


def gold_kpis(conn: psycopg.Connection[Any], minutes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    since = _since(conn, "gold_user_activity_1m", minutes)
    rows = (
        conn.execute(
            "SELECT window_start, event_type, events FROM gold_user_activity_1m WHERE window_start > %s ORDER BY 1",
            (since,),
        ).fetchall()
        if since
        else []
    )
    out["activity"] = _series(rows) | {"total": sum(int(r[2]) for r in rows)}
    since = _since(conn, "gold_transactions_1m", minutes)
    rows = (
        conn.execute(
            "SELECT window_start, merchant_category, amount_sum, txn_count, declined_count FROM gold_transactions_1m"
            " WHERE window_start > %s ORDER BY 1",
            (since,),
        ).fetchall()
        if since
        else []
    )
    by_category: dict[str, list[int]] = {}
    for _, cat, _, n, declined in rows:
        agg = by_category.setdefault(cat, [0, 0])
        agg[0] += int(n)
        agg[1] += int(declined)
    out["transactions"] = _series([(t, c, a) for t, c, a, _, _ in rows]) | {
        "categories": [
            {"category": c, "txns": n, "declined": d, "decline_rate": d / n if n else 0.0}
            for c, (n, d) in sorted(by_category.items())
        ],
        "total_amount": sum(float(r[2] or 0) for r in rows),
    }
    since = _since(conn, "gold_iot_sensors_1m", minutes)
    devices = (
        conn.execute(
            "SELECT g.device_id, g.sensor_type, sum(g.readings), avg(g.avg_value),"
            " (SELECT count(*) FROM anomalies a WHERE a.source = 'iot_sensors' AND a.series_key = g.device_id"
            "  AND a.window_start > %s) AS anomalies"
            " FROM gold_iot_sensors_1m g WHERE g.window_start > %s GROUP BY 1, 2 ORDER BY anomalies DESC, 1 LIMIT 15",
            (since, since),
        ).fetchall()
        if since
        else []
    )
    readings = (
        conn.execute(
            "SELECT window_start, sensor_type, sum(readings) FROM gold_iot_sensors_1m WHERE window_start > %s"
            " GROUP BY 1, 2 ORDER BY 1",
            (since,),
        ).fetchall()
        if since
        else []
    )
    out["iot"] = _series(readings) | {
        "devices": [
            {"device": d, "type": t, "readings": int(n), "avg": float(a or 0), "anomalies": int(k)}
            for d, t, n, a, k in devices
        ],
        "anomalies": int(
            conn.execute("SELECT count(*) FROM anomalies WHERE window_start > %s", (since,)).fetchone()[0]  # type: ignore[index]
        )
        if since
        else 0,
    }
    return out


def quality(conn: psycopg.Connection[Any], minutes: int) -> dict[str, Any]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    return {
        "rules": [
            {
                "source": r.source,
                "rule": r.rule,
                "severity": r.severity,
                "checked": r.checked,
                "failed": r.failed,
                "pass_rate": r.pass_rate,
            }
            for r in rule_rates(conn, since)
            if r.checked
        ],
        "alerts": [
            {"key": k, "severity": s, "first_seen": f.isoformat(), "last_seen": last.isoformat(), "message": m}
            for k, s, f, last, m, _ in open_alerts(conn)
        ],
    }


def latency(conn: psycopg.Connection[Any], spec: GoldSpec, lateness_s: float, minutes: int) -> dict[str, Any]:
    """Window end -> final row in PostgreSQL for one gold table (see the module docstring)."""
    width_s = spec.window_minutes * 60
    row = conn.execute(
        f"""
        WITH newest AS (SELECT max(window_start) AS ws FROM {spec.table}),
        closed AS (
            SELECT DISTINCT g.window_start FROM {spec.table} g, newest
            WHERE g.window_start <= newest.ws - make_interval(secs => %s)
            ORDER BY g.window_start DESC LIMIT %s
        ),
        lat AS (
            SELECT g.window_start, extract(epoch FROM g.updated_at - g.window_end)::float8 AS s
            FROM {spec.table} g JOIN closed USING (window_start)
        )
        SELECT count(DISTINCT window_start), count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.99) WITHIN GROUP (ORDER BY s),
               (SELECT extract(epoch FROM now() - max(g.updated_at))::float8 FROM {spec.table} g, newest
                WHERE g.window_start > newest.ws - make_interval(mins => %s))
        FROM lat
        """,  # noqa: S608 - fixed table names
        (lateness_s + width_s, LATENCY_WINDOWS, minutes),
    ).fetchone()
    windows, rows, p50, p99, ago = row if row is not None else (0, 0, None, None, None)
    return {
        "table": spec.table,
        "source": spec.source,
        "windows": int(windows),
        "rows": int(rows),
        "p50_s": p50,
        "p99_s": p99,
        "updated_ago_s": None if ago is None else max(0.0, float(ago)),
    }


def end_to_end(conn: psycopg.Connection[Any], lateness_s: float, minutes: int) -> dict[str, Any]:
    tables = [latency(conn, spec, lateness_s, minutes) for spec in GOLD_SPECS]
    ago = [t["updated_ago_s"] for t in tables if t["updated_ago_s"] is not None]
    return {
        "windows": LATENCY_WINDOWS,
        "closed_after_s": lateness_s,
        "tables": tables,
        "updated_ago_s": min(ago) if ago else None,
    }


@dataclass(frozen=True)
class Histogram:
    """One query's batch-duration histogram as scraped: cumulative buckets (upper bound, count)."""

    count: float
    total: float
    buckets: tuple[tuple[float, float], ...]

    def minus(self, older: Histogram) -> Histogram:
        before = dict(older.buckets)
        return Histogram(
            self.count - older.count,
            self.total - older.total,
            tuple((le, n - before.get(le, 0.0)) for le, n in self.buckets),
        )

    def quantile(self, q: float) -> float | None:
        """As Prometheus' ``histogram_quantile``: linear within the bucket the rank falls in."""
        if self.count <= 0 or not self.buckets:
            return None
        rank = q * self.count
        lower, below = 0.0, 0.0
        for le, n in self.buckets:
            if n >= rank:
                if math.isinf(le):
                    return lower  # beyond the largest finite bound: that bound is all we know
                return lower + (le - lower) * ((rank - below) / (n - below) if n > below else 1.0)
            lower, below = le, n
        return lower


def histograms(text: str) -> tuple[dict[str, dict[str, float]], dict[str, Histogram]]:
    """The per-query gauges/counters the page shows, and the batch-duration histograms, from /metrics text."""
    queries: dict[str, dict[str, float]] = {}
    parts: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            query = sample.labels.get("query")
            if query is None:
                continue
            q = queries.setdefault(query, {"rows_per_s": 0.0, "lag": 0.0})
            h = parts.setdefault(query, {"count": 0.0, "sum": 0.0, "buckets": []})
            if sample.name == "eventlake_stream_processed_rows_per_second":
                q["rows_per_s"] = sample.value
            elif sample.name == "eventlake_kafka_consumer_lag":
                q["lag"] += sample.value
            elif sample.name == "eventlake_stream_batch_duration_seconds_count":
                h["count"] = sample.value
            elif sample.name == "eventlake_stream_batch_duration_seconds_sum":
                h["sum"] = sample.value
            elif sample.name == "eventlake_stream_batch_duration_seconds_bucket":
                h["buckets"].append((float(sample.labels["le"]), sample.value))
            elif sample.name == "eventlake_stream_watermark_delay_seconds":
                q["event_time_lag_s"] = sample.value
            elif sample.name == "eventlake_stream_last_progress_timestamp_seconds":
                q["last_progress_ts"] = sample.value
    hists = {q: Histogram(h["count"], h["sum"], tuple(sorted(h["buckets"]))) for q, h in parts.items()}
    return queries, hists


class BatchDurations:
    """Batch durations per query over the last ``span_s`` seconds, from successive scrapes."""

    def __init__(self, span_s: float = BATCH_SPAN_S) -> None:
        self.span_s = span_s
        self._lock = threading.Lock()
        self._scrapes: deque[tuple[float, dict[str, Histogram]]] = deque()

    def add(self, now: float, hists: dict[str, Histogram]) -> dict[str, dict[str, Any]]:
        """Record a scrape; per query: batches, mean and p95 (seconds) and the span they cover."""
        with self._lock:
            self._scrapes.append((now, hists))
            # keep the newest scrape at least span_s old as the baseline, drop older ones
            while len(self._scrapes) > 1 and self._scrapes[1][0] <= now - self.span_s:
                self._scrapes.popleft()
            base_t, base = self._scrapes[0]
        out: dict[str, dict[str, Any]] = {}
        for query, h in hists.items():
            old = base.get(query)
            recent = None
            if old is not None and base_t < now and old.count <= h.count:  # a smaller count: the process restarted
                recent = h.minus(old)
            if recent is not None and recent.count > 0:
                scope, span, use = "recent", now - base_t, recent
            else:
                scope, span, use = "since start", None, h
            out[query] = {
                "batches": h.count,
                "avg_batch_s": h.total / h.count if h.count else 0.0,  # since the process started
                "batch_scope": scope,
                "batch_span_s": span,
                "batch_n": use.count,
                "batch_mean_s": use.total / use.count if use.count else None,
                "batch_p95_s": use.quantile(0.95),
                "batches_per_min": 60 * recent.count / (now - base_t) if recent is not None else None,
            }
        return out


def pipeline(metrics_url: str | None, durations: BatchDurations | None = None) -> dict[str, Any]:
    """Per query: rows/s, batch duration (mean, p95), consumer lag, event-time lag (from /metrics)."""
    if metrics_url is None:
        return {"running": False, "queries": {}}
    try:
        text = httpx.get(f"{metrics_url}/metrics", timeout=3).text
    except httpx.HTTPError as err:
        return {"running": False, "queries": {}, "detail": f"{type(err).__name__}"}
    durations = durations or BatchDurations()
    now = time.time()
    queries, hists = histograms(text)
    batches = durations.add(now, hists)
    for name, q in queries.items():
        q.update(batches.get(name, {}))
        if "last_progress_ts" in q:
            q["last_batch_ago_s"] = max(0.0, now - q.pop("last_progress_ts"))
    return {"running": True, "batch_span_s": durations.span_s, "queries": dict(sorted(queries.items()))}


def streaming_metrics_url(settings: Settings) -> str | None:
    """The streaming process's URL: ``dashboard.streaming_url`` when set (the dashboard runs on another
    host or container), else the record it leaves in ``<home>/run/streaming.json``."""
    if settings.dashboard.streaming_url:
        return settings.dashboard.streaming_url.rstrip("/")
    record = settings.home / "run" / "streaming.json"
    try:
        return str(json.loads(record.read_text())["url"])
    except (OSError, ValueError, KeyError):
        return None


#: ``application_name`` of every dashboard connection (find them in ``pg_stat_activity``)
APPLICATION_NAME = "eventlake-dashboard"


def dashboard_pool(settings: Settings, postgres_url: str) -> ConnectionPool:
    """The dashboard's PostgreSQL connections: at most ``dashboard.pool_size``, each bounded like
    :func:`eventlake.pg.connect` (connect timeout, keepalives, answer timeout), checked on checkout so
    a PostgreSQL restart costs one failed check, not a failed page. Opened in the background: the app starts
    (and reports not ready) while PostgreSQL is down."""
    cfg = settings.dashboard
    return ConnectionPool(
        postgres_url,
        min_size=1,
        max_size=cfg.pool_size,
        timeout=cfg.pool_timeout_s,
        kwargs={"connect_timeout": max(1, round(cfg.pool_timeout_s)), "application_name": APPLICATION_NAME}
        | pg.KEEPALIVES,
        connection_class=pg.BoundedConnection,
        check=ConnectionPool.check_connection,
        name="dashboard",
        open=True,
    )


def pool_check(pool: ConnectionPool) -> Check:
    def check() -> tuple[bool, str]:
        try:
            with pool.connection(timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as err:
            return False, f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        return True, "ok"

    return check


def create_app(settings: Settings, postgres_url: str) -> FastAPI:
    """The dashboard over ``postgres_url``. Creates the (empty) tables it reads if they do not exist yet,
    so the page works before the first pipeline run.

    PostgreSQL sees at most ``dashboard.pool_size`` connections from it (``application_name``
    ``eventlake-dashboard``) whatever the number of browsers: one task computes the snapshot once per
    ``refresh_s`` for all SSE clients (:mod:`eventlake.observability.snapshots`), at most
    ``dashboard.max_clients`` of them (then 503 + ``Retry-After``)."""
    tagged = make_conninfo(postgres_url, application_name=APPLICATION_NAME)
    ensure_quality_tables(tagged)
    for spec in GOLD_SPECS:
        ensure_gold_table(tagged, spec)
    cfg = settings.dashboard
    pool = dashboard_pool(settings, tagged)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(title="eventlake dashboard", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.pool = pool
    add_health(app, {"postgres": pool_check(pool)})
    durations = BatchDurations()
    lateness_s = float(settings.streaming.allowed_lateness_s)

    def snapshot() -> dict[str, Any]:
        with pool.connection() as conn:
            body = {
                "generated_at": dt.datetime.now(dt.UTC).isoformat(),
                "window_minutes": cfg.window_minutes,
                "kpis": gold_kpis(conn, cfg.window_minutes),
                "quality": quality(conn, cfg.window_minutes),
                "latency": end_to_end(conn, lateness_s, cfg.window_minutes),
            }
        body["pipeline"] = pipeline(streaming_metrics_url(settings), durations)
        DASHBOARD_SNAPSHOTS.inc()
        return body

    hub = SnapshotHub(snapshot, cfg.refresh_s, cfg.max_clients)
    app.state.snapshots = hub
    retry_after = str(max(1, math.ceil(cfg.refresh_s)))

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/snapshot")
    async def api_snapshot() -> dict[str, Any]:
        try:
            return await hub.current()
        except psycopg.Error as err:
            raise HTTPException(503, f"PostgreSQL unavailable: {type(err).__name__}") from err

    @app.get("/api/events", response_model=None)
    async def events() -> StreamingResponse | JSONResponse:
        slot = hub.join()
        if slot is None:
            return JSONResponse(
                {"detail": f"too many dashboard clients ({cfg.max_clients}); retry later"},
                status_code=503,
                headers={"Retry-After": retry_after},
            )
        return ClientStream(hub.stream(slot), slot)

    @app.post("/api/alerts/{alert_id}/resolve")
    def resolve(alert_id: int, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        if cfg.token is None:
            raise HTTPException(403, "mutating endpoints are disabled: set EVENTLAKE_DASHBOARD_TOKEN")
        expected = f"Bearer {cfg.token.get_secret_value()}"
        if authorization is None or not hmac.compare_digest(authorization, expected):
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        with pool.connection() as conn:
            row = conn.execute(
                "UPDATE dq_alerts SET status = 'resolved', resolved_at = now() WHERE id = %s AND status = 'firing'"
                " RETURNING key",
                (alert_id,),
            ).fetchone()
        if row is None:
            raise HTTPException(404, f"no firing alert {alert_id}")
        log.info("alert resolved by hand", extra={"alert_id": alert_id, "key": row[0]})
        return {"id": alert_id, "key": row[0], "status": "resolved"}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class ClientStream(StreamingResponse):
    """An SSE response that gives its client's place back however it ends (finished, client gone,
    server shutting down), also when the stream never started."""

    def __init__(self, content: AsyncIterator[str], slot: Slot) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()


def main() -> None:
    """``python -m eventlake.observability.dashboard --host H --port P`` (the service manager runs this)."""
    import argparse  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from eventlake.config import load_settings  # noqa: PLC0415
    from eventlake.logs import configure_logging  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m eventlake.observability.dashboard")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = load_settings()
    configure_logging("INFO")
    if settings.postgres.url is None:
        raise SystemExit("error: EVENTLAKE_POSTGRES_URL is not set; the dashboard reads the gold tables from it")
    url = settings.postgres.url.get_secret_value()
    uvicorn.run(create_app(settings, url), host=args.host, port=args.port, access_log=False, log_config=None)


if __name__ == "__main__":
    main()
