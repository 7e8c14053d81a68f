"""The peers eventlake is measured against, on the same pre-filled topic (issue 12, item 3).

Each function reads the records already on ``topic`` and returns :class:`Figures` (events/s,
seconds, CPU seconds, peak RSS) for the measured span only:

- :func:`bare_consume` - the transport limit: a confluent-kafka ``Consumer``, ``consume()`` in
  large batches, nothing decoded.
- :func:`consume_fastavro` - the Python-decode ceiling: the same plus fastavro
  ``schemaless_reader`` on the Confluent wire format (schemas fetched by id, cached).
- :func:`quix_tumbling` - Quix Streams (what a Python team would pick instead) with the
  aggregation of ``gold_transactions_1m``: 1-minute tumbling event-time windows per
  merchant_category with count, sum(amount) and the count of ``status == 'DECLINED'``.
- :func:`bare_spark_pass` - the engine limit: one Spark *batch* pass, Kafka -> ``from_avro`` ->
  Delta append, plus the same 1-minute window aggregation -> a second Delta table.

The span starts at the first record received (bare consume, fastavro, Quix) or at the first Spark
call (Spark pass); what comes before it (connecting, the consumer group join with the broker's
``group.initial.rebalance.delay.ms``, Quix's topic creation) is reported as ``startup_s``, and
Spark session start-up is the caller's to measure. CPU seconds are user+system of this process
(``cpu_s``) and of its child processes, i.e. Spark's JVM (``child_cpu_s``); peak RSS is sampled
every 0.1 s during the span, again for this process and its children.

Quix Streams 3.28 pins ``confluent-kafka<2.13`` and ``pydantic<2.14``, ``pydantic-settings<2.16``,
below eventlake's pins, so it lives in its own venv, ``.venv-bench`` (``make bench-deps``).
:func:`quix_tumbling` runs in-process when ``quixstreams`` imports, otherwise it runs this file
under ``.venv-bench/bin/python`` and reads the figures back as JSON (the child measures itself).
Only the standard library, psutil, httpx, fastavro and confluent-kafka are imported at the top, so
this module runs in either venv; pyspark and quixstreams are imported where used.

Standalone: ``python bench/peers.py {bare,fastavro,quix} --bootstrap HOST:PORT --registry URL
--topic raw.transactions --n 1000000 [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import fastavro
import httpx
import psutil
from confluent_kafka import Consumer, Message

#: ``make bench-deps`` creates it; where Quix Streams runs when it is not importable here.
BENCH_PYTHON = Path(__file__).resolve().parent.parent / ".venv-bench" / "bin" / "python"
#: records per ``Consumer.consume()`` call
CONSUME_BATCH = 50_000
#: give up when no record arrived for this long (the topic holds fewer than ``n``)
IDLE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Figures:
    """What one measured run gives; ``seconds`` is the measured span, ``startup_s`` what preceded it."""

    name: str
    n: int
    seconds: float
    events_per_s: float
    cpu_s: float
    child_cpu_s: float
    peak_rss_mb: float
    peak_child_rss_mb: float
    startup_s: float = 0.0
    jvm_threads: dict[str, float] = field(default_factory=dict)  # Spark JVM CPU by thread group
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_s_per_million(self) -> float:
        return (self.cpu_s + self.child_cpu_s) / self.n * 1e6 if self.n else 0.0

    def line(self) -> str:
        return (
            f"{self.name:<16} {self.events_per_s:10.0f} ev/s  n {self.n}  {self.seconds:7.2f} s  "
            f"startup {self.startup_s:5.2f} s  cpu {self.cpu_s:6.1f}+{self.child_cpu_s:.1f} s "
            f"({self.cpu_s_per_million:.1f} s/M)  peak_rss {self.peak_rss_mb:.0f}+{self.peak_child_rss_mb:.0f} MB"
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Figures:
        return cls(**json.loads(text))


def _is_spark_jvm(p: psutil.Process) -> bool:
    try:
        return "org.apache.spark.deploy.SparkSubmit" in p.cmdline()
    except psutil.Error:
        return False


def _is_spawned(p: psutil.Process) -> bool:
    """A multiprocessing ``spawn`` child (eventlake's serving process)."""
    try:
        return any("multiprocessing.spawn" in a for a in p.cmdline())
    except psutil.Error:
        return False


def pipeline_parts(root: psutil.Process) -> dict[str, list[psutil.Process]]:
    """The processes a streaming driver ``root`` has started, by part: ``jvm`` (Spark's JVM),
    ``workers`` (the JVM's children: PySpark's Python workers) and ``serving`` (multiprocessing
    ``spawn`` children: the serving path). The local stack's servers, when they are children of
    ``root`` too, are in none of them: they are not the pipeline's cost.

    A child of the JVM that still has the JVM's command line is one it is starting a command with
    (``posix_spawn`` of a shell command, e.g. Hadoop's ``chmod``), caught before its ``exec``: its RSS
    is the JVM's own pages, so it is left out, as a worker and as a second JVM (seen in soaks: a 2.9
    GB "worker" for 10 s; a JVM sample of 5.7 GB, twice its neighbours)."""
    children = root.children(recursive=True)
    parts: dict[str, list[psutil.Process]] = {"jvm": [], "workers": [], "serving": []}
    jvms = list(filter(_is_spark_jvm, children))
    pids = {j.pid for j in jvms}
    for jvm in jvms:
        with contextlib.suppress(psutil.Error):
            if jvm.ppid() in pids:
                continue
        parts["jvm"].append(jvm)
        with contextlib.suppress(psutil.Error):  # exited meanwhile
            parts["workers"] += [c for c in jvm.children(recursive=True) if not _is_spark_jvm(c)]
    parts["serving"] = [p for p in children if _is_spawned(p)]
    return parts


def cpu_seconds(p: psutil.Process) -> float:
    """User + system CPU seconds of ``p`` so far."""
    t = p.cpu_times()
    return float(t.user + t.system)


def rss_bytes(procs: list[psutil.Process]) -> int | None:
    """Resident memory of ``procs`` together; None when none of them is alive (any more)."""
    total, alive = 0, False
    for p in procs:
        try:
            total += p.memory_info().rss
            alive = True
        except psutil.Error:
            continue  # exited meanwhile
    return total if alive else None


#: JVM threads by what their CPU is spent on, by native name (``/proc`` truncates it to 15 characters).
#: Threads created from Java (executor tasks, py4j calls, Spark's schedulers) inherit the native name
#: of the thread that made them ("Thread-3", "java"), so they cannot be told apart here: they are
#: ``java``; the event log gives the executor tasks' share (``step_cpu``).
_THREAD_GROUPS = (
    ("jit", ("C1 CompilerThre", "C2 CompilerThre")),
    ("gc", ("GC Thread", "G1 ", "VM Thread")),
)


def jvm_thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds of each live thread of a JVM by thread id, with its group (``jit``, ``gc``, ``java``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                comm = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            group = next((g for g, prefixes in _THREAD_GROUPS if comm.startswith(prefixes)), "java")
            out[int(task.name)] = (group, (int(fields[11]) + int(fields[12])) / ticks)  # utime + stime
    return out


class Meter:
    """CPU seconds and peak RSS of this process over a span, and with ``spark=True`` (the default)
    of the Spark JVM(s) this process started and their children (Python workers) too, and of its
    multiprocessing children (the serving process beside the passes).

    Only those count as children: the local stack (Kafka, PostgreSQL, the registry) may run as
    children of this process as well. Children are sampled every ``interval`` seconds, so one
    that exits between two samples is counted up to its last sample.
    """

    def __init__(self, interval: float = 0.1, *, spark: bool = True) -> None:
        self.interval = interval
        self.spark = spark
        self.proc = psutil.Process()
        self.peak_rss = 0
        self.peak_child_rss = 0
        self.cpu_s = 0.0
        self.child_cpu_s = 0.0
        self._child_start: dict[int, float] = {}
        self._child_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-meter")
        self._cpu0 = 0.0
        self._threads0: dict[tuple[int, int], float] = {}  # (pid, tid): CPU when the span began
        self._threads: dict[tuple[int, int], tuple[str, float]] = {}  # (pid, tid): last sample
        self.jvm_threads: dict[str, float] = {}  # Spark JVM CPU by thread group over the span (spark=True)
        self._last_threads = 0.0

    _cpu = staticmethod(cpu_seconds)

    def _sample(self, initial: bool = False) -> None:
        self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
        rss = 0
        for child in self._children():
            try:
                with child.oneshot():
                    cpu, mem = self._cpu(child), child.memory_info().rss
            except psutil.Error:
                continue  # exited meanwhile
            self._child_start.setdefault(child.pid, cpu if initial else 0.0)  # new children count from 0
            self._child_last[child.pid] = cpu
            rss += mem
        self.peak_child_rss = max(self.peak_child_rss, rss)
        if initial or time.monotonic() - self._last_threads >= 1.0:  # a thread that exits keeps its last sample
            self._last_threads = time.monotonic()
            for pid in self._jvms():
                for tid, (group, cpu) in jvm_thread_cpu(pid).items():
                    self._threads[(pid, tid)] = (group, cpu)
                    if initial:
                        self._threads0[(pid, tid)] = cpu

    def _children(self) -> list[psutil.Process]:
        if not self.spark:
            return []
        parts = pipeline_parts(self.proc)
        return [*parts["jvm"], *parts["workers"], *parts["serving"]]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _jvms(self) -> list[int]:
        return [p.pid for p in self.proc.children(recursive=True) if _is_spark_jvm(p)] if self.spark else []

    def start(self) -> Meter:
        self._cpu0 = self._cpu(self.proc)
        self._sample(initial=True)  # children alive now count from their current CPU time
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._last_threads = 0.0
        self._sample()
        self.cpu_s = self._cpu(self.proc) - self._cpu0
        self.child_cpu_s = float(sum(cpu - self._child_start.get(pid, 0.0) for pid, cpu in self._child_last.items()))
        self.jvm_threads = {}
        for key, (group, cpu) in self._threads.items():
            self.jvm_threads[group] = self.jvm_threads.get(group, 0.0) + cpu - self._threads0.get(key, 0.0)

    def figures(self, name: str, n: int, seconds: float, startup_s: float = 0.0, **notes: Any) -> Figures:
        return Figures(
            name=name,
            n=n,
            seconds=seconds,
            events_per_s=n / seconds if seconds > 0 else 0.0,
            cpu_s=self.cpu_s,
            child_cpu_s=self.child_cpu_s,
            peak_rss_mb=self.peak_rss / 2**20,
            peak_child_rss_mb=self.peak_child_rss / 2**20,
            startup_s=startup_s,
            jvm_threads=dict(self.jvm_threads),
            notes=notes,
        )


class SchemaCache:
    """Writer schemas by Confluent schema id, fetched once from the registry and parsed by fastavro."""

    def __init__(self, registry_url: str) -> None:
        self.url = registry_url.rstrip("/")
        self._parsed: dict[int, Any] = {}

    def get(self, schema_id: int) -> Any:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            resp = httpx.get(f"{self.url}/schemas/ids/{schema_id}", timeout=10)
            resp.raise_for_status()
            parsed = self._parsed[schema_id] = fastavro.parse_schema(json.loads(resp.json()["schema"]))
        return parsed


def latest_schema(registry_url: str, subject: str) -> str:
    """The latest schema text registered under ``subject`` (TopicNameStrategy: ``<topic>-value``)."""
    resp = httpx.get(f"{registry_url.rstrip('/')}/subjects/{subject}/versions/latest", timeout=10)
    resp.raise_for_status()
    return str(resp.json()["schema"])


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )


def _consume(name: str, bootstrap: str, topic: str, n: int, handle: Callable[[list[Message]], None] | None) -> Figures:
    """Consume ``n`` records of ``topic`` from the beginning; ``handle`` sees each batch of good records."""
    t0 = time.monotonic()
    consumer = _consumer(bootstrap)
    consumer.subscribe([topic])
    meter: Meter | None = None
    seen, first, last_record = 0, 0.0, t0
    try:
        while seen < n:
            batch = consumer.consume(CONSUME_BATCH, timeout=0.5)
            now = time.monotonic()
            if not batch:
                if now - last_record > IDLE_TIMEOUT_S:
                    raise TimeoutError(f"{name}: {seen} of {n} records of {topic} after {IDLE_TIMEOUT_S:.0f} s idle")
                continue
            if meter is None:
                first, meter = now, Meter(spark=False).start()  # an idle Spark JVM is not this peer's
            last_record = now
            good = [m for m in batch if m.error() is None]
            if len(good) > n - seen:
                good = good[: n - seen]
            if handle is not None:
                handle(good)
            seen += len(good)
        end = time.monotonic()
    finally:
        if meter is not None:
            meter.stop()
        consumer.close()
    assert meter is not None
    return meter.figures(name, seen, end - first, startup_s=first - t0)


def bare_consume(bootstrap: str, registry_url: str, topic: str, n: int) -> Figures:
    """Transport limit: read ``n`` records with confluent-kafka, ``consume()`` batches of
    :data:`CONSUME_BATCH`, nothing decoded. ``registry_url`` is unused (same signature as the rest)."""
    del registry_url
    return _consume("bare_consume", bootstrap, topic, n, None)


def consume_fastavro(bootstrap: str, registry_url: str, topic: str, n: int) -> Figures:
    """Python-decode ceiling: :func:`bare_consume` plus fastavro ``schemaless_reader`` on each value
    (Confluent wire format: magic 0, 4-byte big-endian schema id, Avro body), writer schemas fetched
    by id and cached, fastavro's defaults (logical types converted, e.g. ``event_time`` to datetime).
    Values that are not in the wire format are counted in ``notes['undecodable']``."""
    schemas = SchemaCache(registry_url)
    reader = fastavro.schemaless_reader
    bad = 0

    def decode(batch: list[Message]) -> None:
        nonlocal bad
        for msg in batch:
            value = msg.value()
            if not value or len(value) < 5 or value[0] != 0:
                bad += 1
                continue
            reader(io.BytesIO(value[5:]), schemas.get(int.from_bytes(value[1:5], "big")))

    fig = _consume("consume_fastavro", bootstrap, topic, n, decode)
    return dataclasses.replace(fig, notes={**fig.notes, "undecodable": bad})


def quix_tumbling(
    bootstrap: str,
    registry_url: str,
    topic: str,
    n: int,
    *,
    repartition: bool = True,
    decoder: str = "registry",
    window_s: int = 60,
    grace_s: int = 900,
    python: str | Path | None = None,
) -> Figures:
    """Quix Streams with ``gold_transactions_1m``'s aggregation, until all ``n`` input records are processed.

    Decoding (``decoder``): ``"registry"`` (default) is Quix's own
    ``AvroDeserializer(schema_registry_client_config=...)``, which hands each value to Confluent's
    SchemaRegistry-aware ``AvroDeserializer`` (writer schema by id, cached; fastavro underneath) -
    the path the Quix docs show for Confluent Avro, so what a Python team would write. Under the
    confluent-kafka 2.12 that Quix pins it also walks the schema for field-level rule tags on every
    message (``_get_inline_tags_recursively``). ``"fastavro"`` is a custom ``Deserializer`` that
    strips the 5-byte header and calls fastavro directly, as :func:`consume_fastavro` does.
    Event time: ``timestamp_extractor`` returns the record's ``event_time`` in ms.

    Aggregation: the Kafka key is account_id, and Quix windows per message key, so the pipeline
    re-keys with ``group_by("merchant_category")``; Quix does that through an internal
    ``repartition__`` topic (every record produced once more, JSON, and consumed again). That is
    the fair equivalent of eventlake's shuffle: without it the same table cannot come out (a
    category's records are spread over all partitions), and Spark shuffles for its groupBy too.
    Before the re-key the value is cut to the three columns the aggregates need
    (merchant_category, amount, declined 0/1), as Spark's column pruning does; records with a null
    merchant_category are dropped (eventlake quarantines them). Then ``tumbling_window(1 min,
    grace).agg(txn_count=Count(), amount_sum=Sum("amount"), declined_count=Sum("declined"))
    .final()`` into a ``BatchingSink`` that only counts the rows. ``repartition=False`` windows
    per account_id instead (no internal topic): a lower bound on Quix's cost, not the same table.

    Grace: 900 s by default, not eventlake's 120 s allowed lateness. On a replayed backlog Quix
    reads the input partitions minutes of event time apart, and it closes windows per partition of
    its own stream time (Spark's watermark advances once per batch over all partitions): with 120 s
    it dropped 63 % of 100k records as late, which would make it skip work eventlake does. Late
    records are counted (``notes['late_dropped']``, not logged); check it is 0.

    Quix's defaults otherwise: at-least-once, RocksDB state with changelog topics, commit every
    5 s; its state dir is a temp dir, its consumer group random, ``auto_offset_reset="earliest"``.
    The span is from the first record processed until the last of the ``n`` input records has
    passed the window (``on_message_processed`` counted on both topics), then ``app.stop()``; the
    shutdown after that is ``notes['shutdown_s']``. The topic should hold exactly ``n`` records
    (with more, the end of the span is approximate).

    Runs in-process when ``quixstreams`` imports here (``python`` None), otherwise as
    ``python bench/peers.py quix --json`` under ``python`` (default :data:`BENCH_PYTHON`), whose
    figures are its own process's.
    """
    if decoder not in {"registry", "fastavro"}:
        raise ValueError(f"decoder must be 'registry' or 'fastavro', not {decoder!r}")
    options: dict[str, Any] = {"repartition": repartition, "decoder": decoder, "window_s": window_s, "grace_s": grace_s}
    if python is None:
        try:
            import quixstreams  # noqa: F401, PLC0415 - optional, bench-only
        except ImportError:
            python = BENCH_PYTHON
    if python is not None and Path(python).absolute() != Path(sys.executable).absolute():
        return _quix_subprocess(Path(python), bootstrap, registry_url, topic, n, **options)
    return _quix_in_process(bootstrap, registry_url, topic, n, **options)


def _quix_subprocess(
    python: Path,
    bootstrap: str,
    registry_url: str,
    topic: str,
    n: int,
    *,
    repartition: bool,
    decoder: str,
    window_s: int,
    grace_s: int,
) -> Figures:
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing; run `make bench-deps` (Quix Streams lives in .venv-bench)")
    cmd = [str(python), __file__, "quix", "--bootstrap", bootstrap, "--registry", registry_url, "--topic", topic]
    cmd += ["--n", str(n), "--window-s", str(window_s), "--grace-s", str(grace_s), "--json"]
    cmd += ["--decoder", decoder, *([] if repartition else ["--no-repartition"])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"quix_tumbling under {python} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    fig = Figures.from_json(done.stdout.strip().splitlines()[-1])
    return dataclasses.replace(fig, notes={**fig.notes, "python": str(python)})


def _quix_deserializer(decoder: str, registry_url: str) -> Any:
    """Quix's registry-aware Avro deserializer, or the wire format decoded with fastavro directly."""
    from quixstreams.models.serializers import Deserializer  # noqa: PLC0415 - optional, bench-only
    from quixstreams.models.serializers.avro import AvroDeserializer  # noqa: PLC0415
    from quixstreams.models.serializers.schema_registry import SchemaRegistryClientConfig  # noqa: PLC0415

    if decoder == "registry":
        return AvroDeserializer(schema_registry_client_config=SchemaRegistryClientConfig(url=registry_url))

    class WireFastavro(Deserializer):  # type: ignore[misc]
        """Confluent wire format decoded with fastavro directly, writer schema by id (cached)."""

        def __init__(self) -> None:
            super().__init__()
            self.schemas = SchemaCache(registry_url)

        def __call__(self, value: bytes, ctx: Any) -> Any:
            return fastavro.schemaless_reader(
                io.BytesIO(value[5:]), self.schemas.get(int.from_bytes(value[1:5], "big"))
            )

    return WireFastavro()


def _quix_in_process(
    bootstrap: str,
    registry_url: str,
    topic: str,
    n: int,
    *,
    repartition: bool,
    decoder: str,
    window_s: int,
    grace_s: int,
) -> Figures:
    import quixstreams  # noqa: PLC0415 - optional, bench-only
    from quixstreams import Application  # noqa: PLC0415
    from quixstreams.dataframe.windows import Count, Sum  # noqa: PLC0415
    from quixstreams.sinks.base import BatchingSink, SinkBatch  # noqa: PLC0415

    class CountingSink(BatchingSink):  # type: ignore[misc]
        rows = 0

        def write(self, batch: SinkBatch) -> None:
            CountingSink.rows += batch.size

    t0 = time.monotonic()
    state = {"in": 0, "sent": 0, "done": 0, "late": 0}
    marks: dict[str, float] = {}
    meter = Meter(spark=False)

    def processed(topic_name: str, partition: int, offset: int) -> None:
        if "first" not in marks:
            marks["first"] = time.monotonic()
            meter.start()
        if topic_name == topic:
            state["in"] += 1
            if not repartition:
                state["done"] += 1
        else:
            state["done"] += 1
        if state["in"] >= n and state["done"] >= state["sent"] and "end" not in marks:
            marks["end"] = time.monotonic()
            app.stop()

    def sent(value: dict[str, Any]) -> None:
        if state["in"] < n:  # this record is among the first n (its input offset is counted after this)
            state["sent"] += 1

    def late(*args: Any, **kwargs: Any) -> bool:
        state["late"] += 1
        return False  # counted, not logged

    def event_time(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
        return int(value["event_time"].timestamp() * 1000)

    deserializer = _quix_deserializer(decoder, registry_url)
    with tempfile.TemporaryDirectory(prefix="bench-quix-") as state_dir:
        app = Application(
            broker_address=bootstrap,
            consumer_group=f"bench-quix-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
            state_dir=state_dir,
            loglevel="WARNING",
            on_message_processed=processed,
        )
        source = app.topic(topic, value_deserializer=deserializer, timestamp_extractor=event_time)
        sdf = app.dataframe(source)
        sdf = sdf[sdf["merchant_category"].notnull()]
        sdf = sdf.apply(
            lambda v: {
                "merchant_category": v["merchant_category"],
                "amount": v["amount"],
                "declined": 1 if v["status"] == "DECLINED" else 0,
            }
        )
        if repartition:
            sdf = sdf.update(sent).group_by("merchant_category")
        sdf = (
            sdf.tumbling_window(timedelta(seconds=window_s), grace_ms=timedelta(seconds=grace_s), on_late=late)
            .agg(txn_count=Count(), amount_sum=Sum("amount"), declined_count=Sum("declined"))
            .final()
        )
        sdf.sink(CountingSink())
        app.run()
        stopped = time.monotonic()
        if "first" in marks:
            meter.stop()
    if "end" not in marks:
        raise RuntimeError(f"quix_tumbling stopped before the end: {state}")
    return meter.figures(
        ("quix_tumbling" if repartition else "quix_per_key") + ("" if decoder == "registry" else "_fastavro"),
        state["in"],
        marks["end"] - marks["first"],
        startup_s=marks["first"] - t0,
        shutdown_s=round(stopped - marks["end"], 3),
        late_dropped=state["late"],
        closed_window_rows=CountingSink.rows,
        repartitioned=state["sent"] if repartition else 0,
        decoder=decoder,
        grace_s=grace_s,
        quixstreams=quixstreams.__version__,
    )


def bare_spark_pass(  # noqa: PLR0917 - the order the benchmark calls it with
    spark: Any,
    bootstrap: str,
    topic: str,
    lake_dir: str | Path,
    registry_url: str,
    n: int | None = None,
    *,
    writer_schema: str | None = None,
) -> Figures:
    """Engine limit: one Spark batch pass over ``topic`` with the caller's session (eventlake's settings).

    ``spark.read.format("kafka")`` from earliest to latest offsets with
    ``kafka.isolation.level=read_committed``; ``from_avro(substring(value, 6, length(value) - 5),
    writer schema)`` (default: the latest under ``<topic>-value``); the decoded rows appended to
    the Delta table ``<lake_dir>/bare_pass/transactions``; then from the same rows (persisted
    MEMORY_AND_DISK, so Kafka is read and decoded once, as a foreachBatch with two writes would)
    a 1-minute window ``groupBy(window(event_time), merchant_category)`` with count, sum(amount)
    and ``count_if(status = 'DECLINED')`` appended to ``<lake_dir>/bare_pass/gold_transactions_1m``.

    Events/s use the rows the Delta commit reports (``numOutputRows``); ``n``, when given, is
    checked against it (``notes['expected_n']``). Session start-up is not in the span (the
    caller measures it); JVM CPU and RSS are ``child_cpu_s`` / ``peak_child_rss_mb``.
    """
    from delta.tables import DeltaTable  # noqa: PLC0415 - heavy, Spark-only
    from pyspark import StorageLevel  # noqa: PLC0415
    from pyspark.sql import functions as F  # noqa: PLC0415
    from pyspark.sql.avro.functions import from_avro  # noqa: PLC0415

    schema = writer_schema or latest_schema(registry_url, f"{topic}-value")
    root = str(lake_dir).rstrip("/") + "/bare_pass"
    bronze, gold = f"{root}/transactions", f"{root}/gold_transactions_1m"
    meter = Meter(spark=True).start()
    t0 = time.monotonic()
    try:
        raw = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .option("kafka.isolation.level", "read_committed")
            .load()
        )
        rows = (
            raw.select(from_avro(F.expr("substring(value, 6, length(value) - 5)"), schema).alias("r"))
            .select("r.*")
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        rows.write.format("delta").mode("append").save(bronze)
        t_bronze = time.monotonic()
        (
            rows.where(F.col("merchant_category").isNotNull())
            .groupBy(F.window("event_time", "1 minute"), "merchant_category")
            .agg(
                F.count(F.lit(1)).alias("txn_count"),
                F.sum("amount").alias("amount_sum"),
                F.count_if(F.col("status") == "DECLINED").alias("declined_count"),
            )
            .select(
                F.col("window.start").alias("window_start"),
                F.col("window.end").alias("window_end"),
                "merchant_category",
                "txn_count",
                "amount_sum",
                "declined_count",
            )
            .write.format("delta")
            .mode("append")
            .save(gold)
        )
        end = time.monotonic()
        rows.unpersist()
    finally:
        meter.stop()

    def written(path: str) -> int:
        metrics = DeltaTable.forPath(spark, path).history(1).collect()[0]["operationMetrics"]
        return int(metrics["numOutputRows"])

    count = written(bronze)
    notes: dict[str, Any] = {"bronze_s": round(t_bronze - t0, 3), "gold_s": round(end - t_bronze, 3)}
    notes["gold_rows"] = written(gold)
    if n is not None and n != count:
        notes["expected_n"] = n
    return meter.figures("bare_spark_pass", count, end - t0, **notes)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Keep library prints off stdout, where ``--json`` writes its one line."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("peer", choices=["bare", "fastavro", "quix"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--window-s", type=int, default=60)
    parser.add_argument("--grace-s", type=int, default=900)
    parser.add_argument("--decoder", choices=["registry", "fastavro"], default="registry")
    parser.add_argument("--no-repartition", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    with _quiet_stdout():
        if args.peer == "bare":
            fig = bare_consume(args.bootstrap, args.registry, args.topic, args.n)
        elif args.peer == "fastavro":
            fig = consume_fastavro(args.bootstrap, args.registry, args.topic, args.n)
        else:
            fig = quix_tumbling(
                args.bootstrap,
                args.registry,
                args.topic,
                args.n,
                repartition=not args.no_repartition,
                decoder=args.decoder,
                window_s=args.window_s,
                grace_s=args.grace_s,
                python=sys.executable,
            )
    print(fig.to_json() if args.json else fig.line())


if __name__ == "__main__":
    main()
