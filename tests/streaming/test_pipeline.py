"""The whole pipeline on real Kafka, registry, Spark, Delta and PostgreSQL, checked against an
independent recompute from the raw topics."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import threading
import uuid
from typing import Any

import psycopg
import pytest
from deltalake import DeltaTable

from eventlake.config import Settings, load_settings
from eventlake.endpoints import Endpoints
from eventlake.kafka.admin import admin_client, provision_topics
from eventlake.lake import s3_credentials
from eventlake.quality.anomaly import detect
from eventlake.quality.rules import load_quality
from eventlake.services import Stack, endpoints
from eventlake.services.process import wait_until
from eventlake.serving.runner import ServingProcess
from eventlake.streaming.gold import SPECS_BY_SOURCE
from eventlake.streaming.jobs import JOBS, start_jobs
from eventlake.streaming.pipeline import gold_phase, merge_due
from eventlake.streaming.progress import ProgressRecorder, QueryProgress
from eventlake.streaming.silver import SilverCounts
from eventlake.streaming.specs import ROLLUP_SPECS
from tests.conftest import MakeSettings
from tests.faults import paused
from tests.streaming import recompute
from tests.streams import send

pytestmark = pytest.mark.e2e
START = 1_767_225_600_000
SOURCES = ("user_activity", "iot_sensors", "transactions")


def pipeline_settings(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any, lake: str | None = None, **overrides: Any
) -> Settings:
    """The shared stack, with topics, lake, checkpoints and database of this test's own."""
    tag = f"t{uuid.uuid4().hex[:6]}"
    base = endpoints(stack.settings).postgres_url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {tag}")
    db_url = base.rsplit("/", 1)[0] + f"/{tag}"
    kwargs: dict[str, Any] = {
        "home": stack.settings.home,
        "s3": {"local": True},
        "postgres": {"url": db_url},
        "topics": {"raw_prefix": f"{tag}.raw.", "dlq_prefix": f"{tag}.dlq.", "alerts": f"{tag}.alerts"},
        "lake": {"uri": lake or (tmp_path / "lake").as_uri()},
        "streaming": {"checkpoint_dir": (tmp_path / "checkpoints").as_uri()},
    }
    for key, value in overrides.items():  # sections merge: pipeline_settings(..., streaming={"trigger_s": 1})
        kwargs[key] = kwargs[key] | value if isinstance(kwargs.get(key), dict) else value
    settings = make_settings(tag, **kwargs)
    provision_topics(
        admin_client(endpoints(settings).kafka_bootstrap), settings.topics.specs(), settings.kafka.replication_factor
    )
    return settings


def delta_rows(settings: Settings, layer: str, name: str) -> list[dict[str, Any]]:
    """A Delta table read with delta-rs (independent of Spark), on a local or an S3 lake."""
    uri = f"{settings.lake_uri.rstrip('/')}/{layer}/{name}"
    if uri.startswith("file://"):
        return DeltaTable(uri.removeprefix("file://")).to_pyarrow_table().to_pylist()
    endpoint = endpoints(settings).s3_endpoint
    key, secret = s3_credentials(settings) or ("", "")
    options = {
        "AWS_ENDPOINT_URL": endpoint or "",
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": settings.s3.region,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    return DeltaTable(uri, storage_options=options).to_pyarrow_table().to_pylist()


def assert_gold_matches(
    settings: Settings,
    source: str,
    expected: dict[tuple[Any, ...], tuple[Any, ...]],
    table: str | None = None,
    *,
    delta: bool = True,
    postgres: bool = True,
) -> None:
    """PostgreSQL gold (``postgres``) and Delta gold (``delta``) equal ``expected``:
    {(window_start, *keys): aggregates}."""
    spec = next(
        s for s in (*SPECS_BY_SOURCE[source], *ROLLUP_SPECS) if s.source == source and s.table == (table or s.table)
    )
    keys = ", ".join(spec.key_columns)
    aggs = ", ".join(a for a, _, _ in spec.aggs)
    layers = []
    if postgres:
        with psycopg.connect(endpoints(settings).postgres_url) as conn:
            pg = {
                tuple(r[: len(spec.key_columns)]): tuple(r[len(spec.key_columns) :])
                for r in conn.execute(f"SELECT {keys}, {aggs} FROM {spec.table}").fetchall()
            }
        layers.append(("postgres", pg))
    if delta:
        lake = delta_rows(settings, "gold", spec.table)
        layers.append(
            ("delta", {tuple(r[c] for c in spec.key_columns): tuple(r[a] for a, _, _ in spec.aggs) for r in lake})
        )
    for name, actual in layers:
        assert set(actual) == set(expected), f"{name} {spec.table}: windows/groups differ"
        for key, want in expected.items():
            got = actual[key]
            assert all(math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9) for g, w in zip(got, want, strict=True)), (
                name,
                key,
                got,
                want,
            )


def test_seeded_pipeline_with_faults_equals_independent_recompute(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any
) -> None:
    settings = pipeline_settings(stack, make_settings, tmp_path)
    live = endpoints(settings)
    n, fraction = 2000, 0.05
    summary = send(settings, live, SOURCES, n, seed=7, start_ms=START, faults=fraction)
    assert summary.delivered == 3 * n
    counts: dict[str, SilverCounts] = {}
    recorder = ProgressRecorder()
    spark.streams.addListener(recorder)
    try:
        start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=True, counts=counts)
        # Listener events arrive asynchronously; every query reports its input rows.
        want = {f"pipeline_{s}": n for s in SOURCES}

        def reported() -> bool:
            seen = recorder.snapshot()
            return all(seen.get(q, QueryProgress(q)).input_rows_total == v for q, v in want.items())

        assert wait_until(reported, timeout=60), recorder.snapshot()
        progress = recorder.snapshot()
        assert all(progress[f"pipeline_{s}"].processed_rows_per_s > 0 for s in SOURCES)
    finally:
        spark.streams.removeListener(recorder)

    lake = settings.lake_uri.removeprefix("file://")
    for source in SOURCES:
        raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw(source), n)
        assert raw.total == n and sum(raw.labels.values()) == n * fraction
        assert_gold_matches(settings, source, recompute.gold(source, raw.records))
        if source == "transactions":
            sliding = recompute.sliding_transactions(raw.records)
            assert_gold_matches(settings, source, sliding, table="gold_transactions_5m_sliding")

        bronze = DeltaTable(f"{lake}/bronze/{source}").to_pyarrow_table()
        silver = DeltaTable(f"{lake}/silver/{source}").to_pyarrow_table()
        quarantine = Counter_of(
            DeltaTable(f"{lake}/quarantine/{source}").to_pyarrow_table().column("reason").to_pylist()
        )
        assert bronze.num_rows == n
        assert silver.num_rows == len(raw.records) == n - sum(raw.labels.values())
        assert len(set(silver.column("event_id").to_pylist())) == silver.num_rows
        by_kind = {
            "undecodable": quarantine["not_wire_format"] + quarantine["unknown_schema_id"],
            "garbage_body": quarantine["undecodable"],
            "null_required": sum(v for k, v in quarantine.items() if k.startswith("null_required")),
            "out_of_range": sum(v for k, v in quarantine.items() if k.startswith("out_of_range")),
            "late": quarantine["late"],
            "duplicate": counts[source].duplicates,
        }
        assert by_kind == dict(raw.labels), source
        dlq = recompute.read_topic(
            live.kafka_bootstrap, live.registry_url, settings.topics.dlq(source), 0, decode=False
        )
        assert dlq.total == sum(quarantine.values())

    # Running again finds nothing new and changes nothing.
    with psycopg.connect(live.postgres_url) as conn:
        before = conn.execute("SELECT count(*) FROM eventlake_stream_commits").fetchone()
    start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=True)
    for source in SOURCES:
        raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw(source), n)
        assert_gold_matches(settings, source, recompute.gold(source, raw.records))
    with psycopg.connect(live.postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM eventlake_stream_commits").fetchone() == before


def run_transactions_in_parts(spark: Any, settings: Settings, parts: tuple[tuple[int, int], ...]) -> Endpoints:
    """``transactions`` only: 600 records per (seed, ms after START) part, then ``--until-idle``."""
    settings.topics.sources = ("transactions",)
    live = endpoints(settings)
    for seed, offset_ms in parts:
        assert send(settings, live, ["transactions"], 600, seed=seed, start_ms=START + offset_ms).delivered == 600
    start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=True)
    return live


def assert_transactions_gold(settings: Settings, live: Endpoints, n: int) -> None:
    """Both transactions gold tables, PostgreSQL and Delta, equal the recompute of the topic's ``n`` records."""
    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw("transactions"), n)
    assert_gold_matches(settings, "transactions", recompute.gold("transactions", raw.records))
    sliding = recompute.sliding_transactions(raw.records)
    assert_gold_matches(settings, "transactions", sliding, table="gold_transactions_5m_sliding")


def test_delta_gold_gathers_closed_windows_for_gold_delta_every_s_and_until_idle_writes_the_rest(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any
) -> None:
    """Delta gold is merged when the windows closed since its last MERGE span
    ``streaming.gold_delta_every_s`` of event time, not in every batch that closes one; the end of
    ``--until-idle`` (``flush``) merges what was gathered since, and every layer is exact. Delta
    ``quality/metrics`` is exported with the MERGEs likewise.

    One partition and 300 records per trigger make the batches known: three parts of 600 records,
    the second 3 minutes after the first (its batches close the first part's windows), the third
    15 minutes after it (past the 10 minutes gathered). Merging every batch that closes a window, as
    before, would have made three commits of ``gold_transactions_1m``: batches 2, 4 and the
    flush."""
    settings = pipeline_settings(
        stack,
        make_settings,
        tmp_path,
        topics={"raw_spec": {"partitions": 1}},
        streaming={"max_offsets_per_trigger": 300, "gold_delta_every_s": 600, "allowed_lateness_s": 5},
    )
    live = run_transactions_in_parts(spark, settings, ((51, 0), (52, 180_000), (53, 900_000)))

    with psycopg.connect(live.postgres_url) as conn:
        merges = conn.execute(
            "SELECT batch_id FROM eventlake_stream_gold WHERE query = 'pipeline_transactions' ORDER BY 1"
        ).fetchall()
        batches = conn.execute(
            "SELECT count(*) FROM eventlake_stream_batches WHERE query = 'pipeline_transactions'"
        ).fetchone()
        exports = conn.execute(
            "SELECT batch_id FROM eventlake_stream_dq WHERE query = 'pipeline_transactions' ORDER BY 1"
        ).fetchall()
        stored = conn.execute("SELECT rule, batch_id, checked, failed FROM dq_metrics").fetchall()
    assert batches is not None and batches[0] >= 6
    # The first batch (no record yet) and the first batch of the third part; none of the second's.
    assert [b for (b,) in merges] == [0, 4]
    # Delta quality/metrics is exported with them, and by the flush through the last batch: one
    # append each (not one per batch), holding every dq_metrics row once.
    last = batches[0] - 1
    assert [b for (b,) in exports] == [0, 4, last]
    metrics_uri = f"{settings.lake_uri.removeprefix('file://').rstrip('/')}/quality/metrics"
    appends = [h.get("userMetadata") for h in DeltaTable(metrics_uri).history() if h["operation"] == "WRITE"]
    assert sorted(appends) == sorted(f"eventlake:pipeline_transactions_dq:{b}" for b in (0, 4, last))
    lake = [(r["rule"], r["batch_id"], r["checked"], r["failed"]) for r in delta_rows(settings, "quality", "metrics")]
    assert sorted(lake) == sorted(tuple(r) for r in stored) and {b for _, b, _, _ in lake} == set(range(last + 1))
    uri = f"{settings.lake_uri.removeprefix('file://').rstrip('/')}/gold/gold_transactions_1m"
    ops = [h["operation"] for h in DeltaTable(uri).history()]
    # Two writes: batch 4 (the first two parts' windows; an append, the table was empty) and the
    # flush (the third's, a MERGE).
    assert ops == ["MERGE", "WRITE", "CREATE TABLE"], ops
    assert_transactions_gold(settings, live, 1800)


def test_until_idle_batch_that_merges_takes_the_open_windows_and_flush_merges_nothing_more(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any
) -> None:
    """Until idle, a batch whose MERGE has closed windows merges the open ones too: when it is the
    run's last, ``flush`` writes no gold (one commit per table, not two), and Delta gold still
    holds every window of the input, open ones included, exactly. Two parts 3 minutes apart in one
    micro-batch: the first part's windows are closed, the second's open."""
    settings = pipeline_settings(
        stack,
        make_settings,
        tmp_path,
        streaming={"max_offsets_per_trigger": 10_000, "allowed_lateness_s": 5},
    )
    live = run_transactions_in_parts(spark, settings, ((61, 0), (62, 180_000)))

    with psycopg.connect(live.postgres_url) as conn:
        batches = conn.execute(
            "SELECT count(*) FROM eventlake_stream_batches WHERE query = 'pipeline_transactions'"
        ).fetchone()
    assert batches == (1,)
    lake = settings.lake_uri.removeprefix("file://").rstrip("/")
    for name in ("gold_transactions_1m", "gold_transactions_5m_sliding"):
        ops = [h["operation"] for h in DeltaTable(f"{lake}/gold/{name}").history()]
        assert ops == ["WRITE", "CREATE TABLE"], (name, ops)  # the batch's (an append); the flush had nothing left
    assert_transactions_gold(settings, live, 1200)


def test_the_sources_delta_gold_merges_fall_in_different_batches() -> None:
    """Three sources whose horizons move together (a live stream: 12 s batches for an hour) each
    MERGE Delta gold once per ``streaming.gold_delta_every_s`` and never two in the same batch (the
    old rule, 300 s after each query's last MERGE, merged all three in the same batches: soak run I)."""
    settings = load_settings()
    every = dt.timedelta(seconds=settings.streaming.gold_delta_every_s)
    sources = settings.topics.sources
    assert len(sources) == 3 and every == dt.timedelta(minutes=5)
    assert [gold_phase(settings, s) for s in sources] == [every * 0, every / 3, every * 2 / 3]
    start = dt.datetime(2026, 12, 1, 10, 0, 7, tzinfo=dt.UTC)
    horizons = [start + dt.timedelta(seconds=12 * b) for b in range(300)]

    def merges(phase: dt.timedelta) -> list[int]:
        lo, out = horizons[0], [0]  # the first batch merges (nothing merged yet)
        for b, hi in enumerate(horizons[1:], start=1):
            if merge_due(lo, hi, every, phase):
                lo = hi
                out.append(b)
        return out

    shifted = {s: merges(gold_phase(settings, s)) for s in sources}
    for s, batches in shifted.items():
        assert 12 <= len(batches) <= 13, (s, batches)  # 3600 s / 300 s, and the first batch
        assert 12 < batches[1] <= 38, (s, batches)  # the second: 150-450 s after the first
        gaps = [b - a for a, b in itertools.pairwise(batches[1:])]
        assert gaps and all(g in (25, 26) for g in gaps), (s, gaps)  # 300 s of 12 s batches
    later = [set(batches[1:]) for batches in shifted.values()]
    assert not (later[0] & later[1] or later[0] & later[2] or later[1] & later[2]), shifted
    # ``gold_delta_every_s`` 0: every batch that closes a window merges it.
    assert merge_due(start, start, dt.timedelta(0), dt.timedelta(0))


def test_until_idle_the_detectors_score_postgres_gold_once_it_is_complete(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any
) -> None:
    """Until idle, the serving path (PostgreSQL gold) runs beside the Spark pass, so the pass's anomaly
    detectors run once both are done: what they stored equals a fresh scoring of the final tables.
    The serving process is paused until the pass has ended (a lagging serving path): detectors that
    ran after each batch, as they do in a live run, would have scored an empty PostgreSQL gold."""
    settings = pipeline_settings(stack, make_settings, tmp_path, streaming={"allowed_lateness_s": 5})
    settings.topics.sources = ("transactions",)
    live = endpoints(settings)
    assert send(settings, live, ["transactions"], 3000, seed=31, start_ms=START).delivered == 3000
    serving = ServingProcess(settings, live, until_idle=True).start()
    pass_ran = threading.Event()

    def lag_until_the_pass_ends() -> None:
        with paused(serving.process.pid or 0):
            assert wait_until(lambda: bool(spark.streams.active), 300)
            pass_ran.set()
            wait_until(lambda: not spark.streams.active, 600)

    lagging = threading.Thread(target=lag_until_the_pass_ends, daemon=True)
    lagging.start()
    start_jobs(spark, settings, live, list(JOBS), until_idle=True, serving=serving)
    lagging.join(5)
    assert pass_ran.is_set() and not lagging.is_alive()

    detectors = [d for d in load_quality(settings).detectors if d.table.startswith("gold_transactions")]
    assert detectors
    stored = "SELECT detector, window_start, series_key, value, score FROM anomalies ORDER BY 1, 2, 3"
    with psycopg.connect(live.postgres_url) as conn:
        cursors = conn.execute("SELECT detector, scored_until FROM anomaly_cursors ORDER BY 1").fetchall()
        found = conn.execute(stored).fetchall()
        with conn.transaction(force_rollback=True):
            conn.execute("DELETE FROM anomalies")
            conn.execute("DELETE FROM anomaly_cursors")
            for d in detectors:
                detect(conn, d, "transactions", settings.streaming.allowed_lateness_s)
            assert conn.execute("SELECT detector, scored_until FROM anomaly_cursors ORDER BY 1").fetchall() == cursors
            assert conn.execute(stored).fetchall() == found
    assert {name for name, _ in cursors} == {d.name for d in detectors}, "every detector scored"


def Counter_of(items: list[str]) -> dict[str, int]:
    from collections import Counter  # noqa: PLC0415

    return Counter(items)


def test_pipeline_on_an_s3_lake(stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any) -> None:
    """The same pipeline with the lake on the S3 API of the session's MinIO (objects on disk, real credentials)."""
    tag = uuid.uuid4().hex[:6]
    settings = pipeline_settings(stack, make_settings, tmp_path, lake=f"s3://{stack.settings.s3.bucket}/lake-{tag}")
    settings.topics.sources = ("transactions",)
    live = endpoints(settings)
    n = 600
    send(settings, live, ["transactions"], n, seed=2, start_ms=START, faults=0.05)
    start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=True)
    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw("transactions"), n)
    assert_gold_matches(settings, "transactions", recompute.gold("transactions", raw.records))
    assert len(delta_rows(settings, "bronze", "transactions")) == n
    assert len(delta_rows(settings, "silver", "transactions")) == len(raw.records)
