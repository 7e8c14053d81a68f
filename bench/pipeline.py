"""End-to-end pipeline figures against the limits and the peer, in one run on the same pre-filled topic.

1. Pre-fills ``raw.<source>`` (``--source``, default transactions) with ``--n`` events (default 1 M).
2. Throughput on those records, each as events/s with CPU seconds per million events and peak RSS:
   - transport limit: a bare confluent-kafka consumer;
   - Python-decode ceiling: the same plus fastavro;
   - Quix Streams (``make bench-deps``) with the same 1-minute tumbling aggregation;
   - the engine limit: one bare Spark *batch* pass (Kafka -> ``from_avro`` -> Delta append, plus the
     1-minute window -> Delta), with eventlake's session settings;
   - eventlake end to end: ``eventlake stream --until-idle`` (bronze, silver, quarantine/DLQ, gold to
     Delta and PostgreSQL, DQ), one pass per micro-batch; the pass writes PostgreSQL gold and hands
     the serving path its positions (``serving.handoff``), as ``--until-idle`` does by default;
   - the serving path's takeover after that hand-off (its next start: it replays to the handed
     positions without writing, then writes its held windows once), on its own line: the cost the
     hand-off moves from the run to the live view's next start;
   - the lake path alone (run before the whole run): the same with the serving path off
     (``serving.enabled=false``): the whole run without the hand-off's position writes.
   The bare pass reads the topic in one Spark batch; eventlake's runs read it in micro-batches of
   ``--per-trigger`` records, by default as many as ``--n``: one micro-batch, the same records per
   batch as the bare pass, so the ratio compares the engines' work per record and not how many
   times eventlake pays its fixed cost per batch (session 20's A/B: 500 k per trigger, two
   micro-batches, gave 14-30 % fewer events/s; docs/performance.md). A live pipeline's catch-up
   batches are bounded by ``streaming.max_offsets_per_trigger`` (default 200 k).
   Spark session start-up is reported on its own line, not in any rate. Both Spark passes first run
  once on ``--warmup`` records of their own (default 200 k; 0: measure a cold JVM), so that the
  measured runs meet a JIT-compiled JVM, as a long-running pipeline does (:func:`warm_up`). That is
  not warm enough for eventlake's larger code (session 19: the whole run after the warm-up still spent
  9-10 s of JIT per million events, 3 s when another 1 M-record run came first), so each Spark
  figure (bare pass, whole run) is run ``--repeat`` times (default 2) on the same records in the
  same JVM, every run is printed, and the last is the figure the ratios use.
3. Latency at ``--rate`` events/s in total over the three sources together (``--rate/3`` each, event
   time = wall clock) for ``--seconds``: for every gold row of the three contract tables whose window
   ended inside the phase, ``updated_at`` of its final value (PostgreSQL's clock) minus window end.
4. Silver batch duration with 0, 5 M and 20 M rows already in silver (``--silver-sizes``): the same
   input batch (``--batch`` records) on a lake pre-filled with that many older rows; steady batches
   only (the first, which loads open-window state, is reported apart).
5. Peak RSS of this process (the Spark driver's Python side) and of Spark's JVM.

Run: ``make bench`` or ``.venv/bin/python bench/pipeline.py [--n 1000000] [--rate 10000] [--seconds 300]``.
The local stack is started by a separate ``eventlake up`` process, so this process's children are
Spark's JVM and its Python workers only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from eventlake.config import Settings, load_settings
from eventlake.kafka.admin import admin_client, provision_topics
from eventlake.logs import configure_logging
from eventlake.registry.client import register_schemas
from eventlake.services import endpoints
from eventlake.sources.produce import ProduceSummary, produce

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import Figures, Meter, bare_consume, bare_spark_pass, consume_fastavro, quix_tumbling

SOURCES = ("user_activity", "iot_sensors", "transactions")
START_MS = 1_767_225_600_000
EVENTLAKE = str(Path(sys.executable).parent / "eventlake")


def home_env(home: Path) -> dict[str, str]:
    """The environment of an ``eventlake`` command on the stack of ``home``."""
    return {**os.environ, "EVENTLAKE_HOME": str(home)}


@contextlib.contextmanager
def local_stack(prefix: str) -> Iterator[Path]:
    """A stack of its own: ``eventlake up`` in a fresh temporary EVENTLAKE_HOME (free ports, so it
    cannot meet another run's), ``eventlake down`` and the directory removed on the way out. A
    separate process runs it, so the children of the caller are its own Spark JVM and workers only."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        home = Path(tmp)
        subprocess.run([EVENTLAKE, "up"], env=home_env(home), check=True, capture_output=True)
        try:
            yield home
        finally:
            subprocess.run([EVENTLAKE, "down"], env=home_env(home), check=False, capture_output=True)


def producer_env(home: Path, settings: Settings) -> dict[str, str]:
    """The environment of an ``eventlake`` command on ``settings``' topics and database (a phase's own)."""
    return {
        **home_env(home),
        "EVENTLAKE_POSTGRES_URL": endpoints(settings).postgres_url,
        "EVENTLAKE_TOPICS_RAW_PREFIX": settings.topics.raw_prefix,
        "EVENTLAKE_TOPICS_DLQ_PREFIX": settings.topics.dlq_prefix,
        "EVENTLAKE_TOPICS_ALERTS": settings.topics.alerts,
    }


def start_producer(env: dict[str, str], rate: float, source: str = "all") -> subprocess.Popen[bytes]:
    """What a user runs: one ``eventlake produce --source <source>`` process at ``rate`` ev/s *in total*
    (``--rate`` is per source, so with ``all`` each of the three gets ``rate / 3``), until
    :func:`stop_producer`."""
    per_source = rate / len(SOURCES) if source == "all" else rate
    cmd = [EVENTLAKE, "produce", "--source", source, "--rate", f"{per_source:g}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_producer(producer: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user stops it (it flushes what is in flight); raises if it did not end cleanly."""
    producer.send_signal(signal.SIGINT)
    _, err = producer.communicate(timeout=120)
    if producer.returncode not in (0, 130):
        raise RuntimeError(f"producer failed ({producer.returncode}): {err.decode()[-2000:]}")


def _settings(home: Path, tag: str, **streaming: Any) -> Settings:
    """Settings on the shared stack with topics, lake, checkpoints and database of their own (``tag``):
    each phase's queries start from batch 0, and their per-batch records must not meet another's."""
    base = endpoints(load_settings(home=home)).postgres_url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {tag}")
    return load_settings(
        home=home,
        postgres={"url": base.rsplit("/", 1)[0] + f"/{tag}"},
        topics={"raw_prefix": f"{tag}.raw.", "dlq_prefix": f"{tag}.dlq.", "alerts": f"{tag}.alerts"},
        lake={"uri": (home / tag / "lake").as_uri()},
        streaming={"checkpoint_dir": (home / tag / "checkpoints").as_uri(), "trigger_s": 1.0, **streaming},
    )


def _fill(settings: Settings, sources: list[str], n: int, seed: int = 1) -> ProduceSummary:
    live = endpoints(settings)
    provision_topics(admin_client(live.kafka_bootstrap), settings.topics.specs(), 1)
    return produce(
        settings,
        bootstrap=live.kafka_bootstrap,
        registry_url=live.registry_url,
        sources=sources,
        count=n,
        seed=seed,
        start_ms=START_MS,
        rate=None,
    )


def _line(f: Figures, base: Figures | None = None, base_name: str = "") -> str:
    ratio = f"  ratio_to_{base_name} {f.events_per_s / base.events_per_s:.2f}" if base else ""
    return f"throughput {f.line()}{ratio}"


def step_cpu(event_log_dir: Path, since_ms: int = 0, prefix: str = "pipeline_") -> dict[str, float]:
    """Executor CPU seconds of the tasks of each pass step (jobs submitted from ``since_ms`` whose
    description, set by the pass, starts with ``prefix``; Delta's own job names after the step are
    folded into it), from Spark's event log. What is not in any task (planning, code generation and
    JIT, GC, Delta log handling on the driver) is the JVM's CPU minus their sum."""
    stage_step: dict[int, str] = {}
    cpu: dict[str, float] = {}
    for path in sorted(event_log_dir.rglob("events_*")):
        with path.open() as lines:
            for line in lines:
                e = json.loads(line)
                if e.get("Event") == "SparkListenerJobStart":
                    desc = (e.get("Properties") or {}).get("spark.job.description") or ""
                    if desc.startswith(prefix) and e.get("Submission Time", 0) >= since_ms:
                        step = desc.split(" ", 2)[1]
                        stage_step.update((sid, step) for sid in e["Stage IDs"])
                elif e.get("Event") == "SparkListenerTaskEnd" and e["Stage ID"] in stage_step:
                    m = e.get("Task Metrics") or {}
                    ns = m.get("Executor CPU Time", 0) + m.get("Executor Deserialize CPU Time", 0)
                    step = stage_step[e["Stage ID"]]
                    cpu[step] = cpu.get(step, 0.0) + ns / 1e9
    return dict(sorted(cpu.items(), key=lambda kv: -kv[1]))


def _threads_line(run: Figures, tasks_s: float | None = None) -> str:
    """The JVM's CPU by thread group; with ``tasks_s`` (the event log's executor CPU), the Java threads'
    share split into the tasks and the rest (driver: planning, Delta log and commits; schedulers)."""
    groups = "  ".join(f"{k} {v:.1f} s" for k, v in sorted(run.jvm_threads.items(), key=lambda kv: -kv[1]))
    split = ""
    if tasks_s is not None and "java" in run.jvm_threads:
        rest = run.jvm_threads["java"] - tasks_s
        split = f"  (java = executor tasks {tasks_s:.1f} s + driver and the rest {rest:.1f} s)"
    return f"jvm_cpu {run.name} by thread: {groups}{split}"


def _steps_line(steps: dict[str, float], run: Figures) -> str:
    by_step = "  ".join(f"{k} {v:.1f} s" for k, v in steps.items())
    tasks = sum(steps.values())
    return f"spark_cpu eventlake tasks by step: {by_step}  (tasks {tasks:.1f} s of the JVM's {run.child_cpu_s:.1f} s)"


def end_to_end(spark: Any, settings: Settings, n: int, name: str = "eventlake") -> tuple[Figures, list[float]]:
    """``stream --until-idle`` on the pre-filled topic (in this process, on the shared session)."""
    from eventlake.streaming.jobs import JOBS, start_jobs  # noqa: PLC0415
    from eventlake.streaming.progress import ProgressRecorder  # noqa: PLC0415

    recorder = ProgressRecorder()
    spark.streams.addListener(recorder)
    meter = Meter().start()
    t = time.monotonic()
    start_jobs(spark, settings, endpoints(settings), list(JOBS), until_idle=True)
    seconds = time.monotonic() - t
    meter.stop()
    time.sleep(1)
    spark.streams.removeListener(recorder)
    durations = [p.batch_duration_s for p in recorder.snapshot().values()]
    batches = sum(p.batches for p in recorder.snapshot().values())
    return meter.figures(name, n, seconds, batches=batches), durations


def _same_topic(home: Path, tag: str, tput: Settings) -> Settings:
    """Settings of their own (lake, checkpoints, database: ``tag``) on ``tput``'s pre-filled topic."""
    settings = _settings(home, tag, max_offsets_per_trigger=tput.streaming.max_offsets_per_trigger)
    settings.topics = tput.topics
    return settings


def lake_path_alone(spark: Any, home: Path, tput: Settings, n: int, run: int = 1) -> Figures:
    """``stream --until-idle`` with the serving path off (``serving.enabled=false``) on the same topic:
    the Spark pass alone does all of eventlake's work, PostgreSQL gold included (once per batch, as
    it does in that mode). Against the whole run: what the hand-off's position writes cost."""
    settings = _same_topic(home, f"lake{run}", tput)
    settings.serving.enabled = False
    figures, _ = end_to_end(spark, settings, n, name="lake_path_alone")
    return figures


def serving_only(home: Path, tput: Settings, n: int) -> Figures:
    """The serving path alone (``eventlake.serving``: decode, rules, lateness, dedup, exact windows of
    every gold table of the source, PostgreSQL upserts with positions) on the pre-filled topic, in
    this process: the figure to hold against Quix Streams, the other pure-Python stream processor."""
    from eventlake.serving.offsets import ensure_offsets_table  # noqa: PLC0415
    from eventlake.serving.runner import run_until_idle  # noqa: PLC0415
    from eventlake.streaming.specs import GOLD_SPECS, ensure_gold_table  # noqa: PLC0415

    settings = _settings(home, "serve")
    settings.topics = tput.topics
    live = endpoints(settings)
    ensure_offsets_table(live.postgres_url)
    for spec in GOLD_SPECS:
        ensure_gold_table(live.postgres_url, spec)
    meter = Meter(spark=False).start()
    t = time.monotonic()
    run_until_idle(settings, live)
    seconds = time.monotonic() - t
    meter.stop()
    return meter.figures("serving_path", n, seconds)


def serving_takeover(settings: Settings, n: int) -> Figures:
    """The serving path's next start after a whole run's hand-off, until idle, in this process: it
    replays the ``n`` handed-off records without writing, then writes every window it holds once."""
    from eventlake.serving.runner import run_until_idle  # noqa: PLC0415

    meter = Meter(spark=False).start()
    t = time.monotonic()
    run_until_idle(settings, endpoints(settings))
    seconds = time.monotonic() - t
    meter.stop()
    return meter.figures("serving_takeover", n, seconds)


def records_in(bootstrap: str, topics: list[str]) -> int:
    """Records in ``topics`` (sum of high watermarks)."""
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count"})
    try:
        total = 0
        for topic in topics:
            for p in c.list_topics(topic, timeout=10).topics[topic].partitions:
                total += c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return total
    finally:
        c.close()


def _print_serving_delay(settings: Settings) -> None:
    """The serving path's own delay (Kafka timestamp of a write's newest record -> write done), from its
    histogram: what the pipeline adds to a window's latency beyond the events' own arrival."""
    import httpx  # noqa: PLC0415
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    record = settings.home / "run" / "serving.json"
    if not record.exists():
        print("serving_delay unavailable (no serving process)", flush=True)
        return
    text = httpx.get(f"{json.loads(record.read_text())['url']}/metrics", timeout=10).text
    buckets = [
        (float(s.labels["le"]), s.value)
        for fam in text_string_to_metric_families(text)
        if fam.name == "eventlake_serving_delay_seconds"
        for s in fam.samples
        if s.name.endswith("_bucket")
    ]
    total = max((v for _, v in buckets), default=0.0)
    if not total:
        print("serving_delay: no writes observed", flush=True)
        return

    def upper(q: float) -> float:
        return next(le for le, v in sorted(buckets) if v >= q * total)

    print(
        f"serving_delay kafka_to_postgres p50 <= {upper(0.5):g} s  p99 <= {upper(0.99):g} s  writes {total:.0f}",
        flush=True,
    )


def latency(
    spark: Any, home: Path, settings: Settings, rate: float, seconds: float
) -> tuple[dict[str, list[float]], float]:
    """Per gold table: seconds from window end to the window's final row in PostgreSQL; achieved ev/s."""
    from eventlake.streaming.jobs import JOBS, start_jobs  # noqa: PLC0415
    from eventlake.streaming.specs import SPECS_BY_SOURCE  # noqa: PLC0415

    live = endpoints(settings)
    queries = start_jobs(spark, settings, live, list(JOBS), until_idle=False)
    time.sleep(20)  # the first micro-batches warm the JVM up; the phase starts after them
    env = producer_env(home, settings)
    topics = [settings.topics.raw(s) for s in SOURCES]
    before = records_in(live.kafka_bootstrap, topics)
    phase_start = dt.datetime.now(dt.UTC)
    producer = start_producer(env, rate)
    time.sleep(seconds)
    stop_producer(producer)
    phase_end = dt.datetime.now(dt.UTC)
    sent = records_in(live.kafka_bootstrap, topics) - before
    time.sleep(max(10.0, settings.streaming.trigger_s * 5))  # the last windows' final batches
    _print_serving_delay(settings)
    queries.stop()  # between micro-batches, as Ctrl-C does
    out: dict[str, list[float]] = {}
    # Whole minutes inside the phase only: the first and the last are partial.
    lo = phase_start.replace(second=0, microsecond=0) + dt.timedelta(minutes=2)
    hi = phase_end.replace(second=0, microsecond=0)
    with psycopg.connect(live.postgres_url) as conn:
        for source in SOURCES:
            spec = SPECS_BY_SOURCE[source][0]
            rows = conn.execute(
                f"SELECT extract(epoch FROM updated_at - window_end) FROM {spec.table}"
                " WHERE window_end >= %s AND window_end <= %s",
                (lo, hi),
            ).fetchall()
            out[spec.table] = [float(r[0]) for r in rows]
    return out, sent / (phase_end - phase_start).total_seconds()


def _prefill_silver(spark: Any, settings: Settings, source: str, rows: int) -> None:
    """``rows`` synthetic silver rows, dated the 30 days before the benchmark's events (older history)."""
    from pyspark.sql import functions as F  # noqa: PLC0415
    from pyspark.sql.types import DoubleType, StringType, StructType  # noqa: PLC0415

    from eventlake.streaming.paths import table  # noqa: PLC0415

    path = table(settings, "silver", source)
    schema = spark.read.format("delta").load(path).schema
    span = 30 * 86_400
    cols = []
    for f in schema.fields:
        if f.name == "event_id":
            cols.append(F.expr("uuid()").alias(f.name))
        elif f.name == "event_time":
            cols.append(F.timestamp_seconds(F.lit(START_MS // 1000 - span) + F.col("id") % span).alias(f.name))
        elif isinstance(f.dataType, DoubleType):
            cols.append((F.rand(7) * 100).alias(f.name))
        elif isinstance(f.dataType, StringType):
            cols.append(F.concat(F.lit("h"), (F.col("id") % 500).cast("string")).alias(f.name))
        elif isinstance(f.dataType, StructType):
            cols.append(F.lit(None).cast(f.dataType).alias(f.name))
        else:
            cols.append(F.lit(None).cast(f.dataType).alias(f.name))
    spark.range(rows).select(*cols).write.format("delta").mode("append").save(path)


def _batches_listener() -> Any:
    from eventlake.streaming.progress import ProgressRecorder  # noqa: PLC0415

    class Batches(ProgressRecorder):
        """Every micro-batch's duration, in order."""

        def __init__(self) -> None:
            super().__init__()
            self.durations: list[float] = []

        def onQueryProgress(self, event: Any) -> None:
            self.durations.append(event.progress.batchDuration / 1000)

    return Batches


def silver_scaling(spark: Any, home: Path, source: str, sizes: list[int], batch: int) -> dict[int, tuple[float, float]]:
    """Silver size -> (first batch s, median steady batch s) for the same input."""
    from eventlake.streaming.jobs import JOBS, start_jobs  # noqa: PLC0415
    from eventlake.streaming.tables import ensure_tables  # noqa: PLC0415

    Batches = _batches_listener()
    out: dict[int, tuple[float, float]] = {}
    for size in sizes:
        tag = f"s{uuid.uuid4().hex[:6]}"
        settings = _settings(home, tag, max_offsets_per_trigger=batch // 4)
        settings.topics.sources = (source,)
        _fill(settings, [source], batch, seed=size % 97 + 2)
        live = endpoints(settings)
        ensure_tables(spark, settings, live.registry_url)
        if size:
            _prefill_silver(spark, settings, source, size)
        listener = Batches()
        spark.streams.addListener(listener)
        start_jobs(spark, settings, live, list(JOBS), until_idle=True)
        time.sleep(2)
        spark.streams.removeListener(listener)
        durations = listener.durations
        steady = durations[1:] or durations
        out[size] = (durations[0] if durations else float("nan"), statistics.median(steady) if steady else float("nan"))
        print(
            f"silver_scaling rows_in_silver {size:>10}  first_batch {out[size][0]:6.2f} s  "
            f"steady_batch_median {out[size][1]:6.2f} s  batches {len(durations)}  "
            f"ratio_to_empty {out[size][1] / out[sizes[0]][1]:.2f}",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--source", default="transactions", choices=SOURCES)
    parser.add_argument("--rate", type=float, default=10_000, help="ev/s in total over the three sources")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--silver-sizes", default="0,5000000,20000000")
    parser.add_argument("--batch", type=int, default=200_000, help="records of the silver-scaling input")
    parser.add_argument(
        "--per-trigger",
        type=int,
        default=0,
        help="records per micro-batch of the throughput runs (0: --n, one micro-batch, as the bare pass reads them)",
    )
    parser.add_argument(
        "--warmup", type=int, default=200_000, help="records of the Spark passes' warm-up run (0: measure cold)"
    )
    parser.add_argument(
        "--skip", default="", help="phases to skip, comma-separated: peers,quix,throughput,latency,silver"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each Spark throughput figure (bare pass, whole run) in the same JVM; the last is the figure",
    )
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "eventlake-bench-pipeline.log")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    skip = set(filter(None, args.skip.split(",")))
    configure_logging("INFO", args.log)  # the figures go to stdout, eventlake's own log here
    print(f"log {args.log}", flush=True)
    with local_stack("bench-pipeline-") as home:
        run(home, args, skip)


def throughput(
    spark: Any, home: Path, settings: Settings, n: int, *, peers: dict[str, Figures], events: Path, repeat: int
) -> None:
    """The serving path alone, then the lake path alone and eventlake end to end (both paths together)
    ``repeat`` times each, the last runs' ratios to the peers, and each whole run's CPU by step."""
    serving = serving_only(home, settings, n)
    print(_line(serving, peers.get("quix"), "quix" if "quix" in peers else ""), flush=True)
    bare = peers.get("bare_spark_pass")
    for i in range(repeat):
        lake = lake_path_alone(spark, home, settings, n, run=i + 1)
        print(f"{_line(lake, bare, 'bare_spark_pass' if bare else '')}  run {i + 1}/{repeat}", flush=True)
        print(_threads_line(lake), flush=True)
    for i in range(repeat):
        since_ms = int(time.time() * 1000)
        whole = settings if i == 0 else _same_topic(home, f"tput{i + 1}", settings)
        mine, _ = end_to_end(spark, whole, n)
        print(f"{_line(mine)}  run {i + 1}/{repeat}", flush=True)
        steps = step_cpu(events, since_ms)
        print(_threads_line(mine, sum(steps.values())), flush=True)
        print(_steps_line(steps, mine), flush=True)
    print(f"{_line(serving_takeover(whole, n), serving, 'serving_path')}  (after the last run's hand-off)", flush=True)
    for name in ("bare_spark_pass", "fastavro", "bare_consume", "quix"):
        if name in peers:
            print(f"ratio eventlake/{name} {mine.events_per_s / peers[name].events_per_s:.2f}", flush=True)


def bare_passes(spark: Any, home: Path, settings: Settings, n: int, *, repeat: int, fastavro: Figures) -> Figures:
    """The bare Spark pass ``repeat`` times on the pre-filled topic; the last run is the figure (the
    warmest JVM, as for eventlake's whole run)."""
    live = endpoints(settings)
    topic = settings.topics.raw(settings.topics.sources[0])
    for i in range(repeat):
        bare = bare_spark_pass(spark, live.kafka_bootstrap, topic, home / f"bare-pass-{i + 1}", live.registry_url, n)
        print(f"{_line(bare, fastavro, 'fastavro')}  run {i + 1}/{repeat}", flush=True)
        print(_threads_line(bare), flush=True)
    return bare


def _event_log(home: Path) -> Path:
    """Have the next Spark session write its event log (uncompressed) here: CPU per pass step."""
    events = home / "spark-events"
    events.mkdir()
    os.environ["PYSPARK_SUBMIT_ARGS"] = (  # the builder's own --conf options come after these
        f"--conf spark.eventLog.enabled=true --conf spark.eventLog.dir={events.as_uri()}"
        " --conf spark.eventLog.compress=false pyspark-shell"
    )
    return events


def warm_up(spark: Any, home: Path, source: str, n: int) -> None:
    """Both Spark passes once on ``n`` records of their own: the measured runs then meet a warm JVM.

    A fresh JVM spends minutes of CPU in its JIT compilers before the code of Spark, Delta and the
    generated classes runs at speed (measured: 113 s of compiler-thread CPU in a cold eventlake run of
    1 M records, 44 s in a warm one). A long-running ``eventlake run`` pays that once; the rates
    below are what it runs at afterwards. The warm-up's own rates (cold JVM) are printed too."""
    settings = _settings(home, "warm", max_offsets_per_trigger=500_000)
    settings.topics.sources = (source,)
    _fill(settings, [source], n, seed=7)
    live = endpoints(settings)
    bare = bare_spark_pass(
        spark, live.kafka_bootstrap, settings.topics.raw(source), home / "warm-bare", live.registry_url, n
    )
    mine, _ = end_to_end(spark, settings, n)
    print(
        f"warmup (cold JVM, not the figures below) n {n}  bare_spark_pass {bare.events_per_s:.0f} ev/s"
        f"  eventlake {mine.events_per_s:.0f} ev/s",
        flush=True,
    )


def run(home: Path, args: argparse.Namespace, skip: set[str]) -> None:
    from eventlake.streaming.session import build_spark  # noqa: PLC0415

    settings = _settings(home, "tput", max_offsets_per_trigger=args.per_trigger or args.n)
    settings.topics.sources = (args.source,)
    t = time.monotonic()
    filled = _fill(settings, [args.source], args.n)
    print(
        f"prefill {args.source} {args.n} records in {time.monotonic() - t:.1f} s ({filled.events_per_s:.0f} ev/s)",
        flush=True,
    )
    live = endpoints(settings)
    topic = settings.topics.raw(args.source)
    peers: dict[str, Figures] = {}
    if "peers" not in skip:
        peers["bare_consume"] = bare_consume(live.kafka_bootstrap, live.registry_url, topic, args.n)
        print(_line(peers["bare_consume"]), flush=True)
        peers["fastavro"] = consume_fastavro(live.kafka_bootstrap, live.registry_url, topic, args.n)
        print(_line(peers["fastavro"], peers["bare_consume"], "bare_consume"), flush=True)
    if not {"peers", "quix"} & skip:
        try:
            peers["quix"] = quix_tumbling(live.kafka_bootstrap, live.registry_url, topic, args.n)
            print(_line(peers["quix"], peers["fastavro"], "fastavro"), flush=True)
        except Exception as err:
            print(f"throughput quix unavailable: {type(err).__name__}: {err}", flush=True)
    t = time.monotonic()
    events = _event_log(home)
    spark = build_spark(settings, "eventlake-bench", s3_endpoint=live.s3_endpoint)
    print(f"spark_startup {time.monotonic() - t:.1f} s (not part of any rate below)", flush=True)
    if args.warmup and not {"peers", "throughput"} <= skip:
        warm_up(spark, home, args.source, args.warmup)
    if "peers" not in skip:
        peers["bare_spark_pass"] = bare_passes(
            spark, home, settings, args.n, repeat=args.repeat, fastavro=peers["fastavro"]
        )
    if "throughput" not in skip:
        throughput(spark, home, settings, args.n, peers=peers, events=events, repeat=args.repeat)
    if "latency" not in skip:
        lat_settings = _settings(home, "lat", max_offsets_per_trigger=200_000)
        lat_settings.topics.sources = SOURCES
        provision_topics(admin_client(live.kafka_bootstrap), lat_settings.topics.specs(), 1)
        register_schemas(lat_settings, live.registry_url)
        per_table, achieved = latency(spark, home, lat_settings, args.rate, args.seconds)
        everything = [v for vs in per_table.values() for v in vs]
        for name, values in [*per_table.items(), ("all", everything)]:
            if len(values) >= 2:
                q = statistics.quantiles(values, n=100)
                print(
                    f"latency window_end_to_postgres {name:<24} p50 {q[49]:5.2f} s  p99 {q[98]:5.2f} s  "
                    f"max {max(values):5.2f} s  rows {len(values)}",
                    flush=True,
                )
            else:
                print(f"latency {name}: too few closed windows ({len(values)}); run longer (--seconds)", flush=True)
        print(f"latency rate asked {args.rate:g} ev/s in total, achieved {achieved:.0f} ev/s", flush=True)
    if "silver" not in skip:
        sizes = [int(s) for s in args.silver_sizes.split(",")]
        silver_scaling(spark, home, args.source, sizes, args.batch)
    spark.stop()


if __name__ == "__main__":
    main()
