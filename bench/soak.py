"""Soak (issue 15): the whole pipeline at the target rate for minutes, sampled: is memory flat, is lag bounded?

A benchmark, not a timed test: it prints what it saw and a verdict, and exits 0 either way.

1. Starts a stack of its own (``eventlake up`` in a temporary home, as ``bench/pipeline.py`` does),
   creates the topics and subjects (``eventlake topics create``) and starts the pipeline as a user
   runs it: one ``eventlake stream`` process (Spark lake path: bronze, silver, quarantine/DLQ, Delta
   gold; the serving path, PostgreSQL gold, in its spawned child process).
2. Once the three queries have started (their checkpoints exist), one ``eventlake produce --source
   all`` process at ``--rate`` ev/s in total over the three sources (default 10,000, issue 12's
   target) for ``--duration`` seconds (default 600).
3. Every ``--every`` seconds (default 10) it samples, and prints as one row:
   - RSS of each process: the producer, the streaming driver's Python, its JVM (and the JVM's Python
     workers, if any), the serving process;
   - consumer lag per source, for the lake path (Spark's *committed* offsets: the offset log entry of
     the newest batch in the checkpoint's commit log, vs the partitions' end offsets) and for the
     serving path (``eventlake_serving_offsets.next_offset``, stored with its gold rows, vs the same
     end offsets);
   - the last committed micro-batch's duration per query, from the checkpoint: the commit file's
     time minus the batch's ``batchTimestampMs`` (when Spark planned it); every batch is kept, so the
     summary's percentiles are over actual batches, not histogram buckets;
   - the active file count of each Delta table of the lake (via deltalake), shown per layer.
4. After the producer stops, it keeps sampling until both paths have caught up (or ``--drain``
   seconds), then stops the pipeline (SIGINT, as Ctrl-C) and the stack.

Summary: per process RSS at start/end/peak and its slope (MB/min, least squares over the last two
thirds of the produce phase: the first third is the JVM's warm-up and heap growth; and over the last
third, as the JVM's heap grew for 4-5 minutes in the first runs) with CPU in cores;
lag max/end per path and source with its slope over the last half (bounded = the slope is under 1 %
of what that source receives per minute); batch duration p50/p99 in the first vs last 2 minutes;
file growth per table (files/min); the producer's achieved rate (records in the raw topics / phase
length). Memory is called flat when the slope would add less than 10 % of the process's end RSS in
an hour. The batch-duration histogram of the streaming process's ``/metrics`` is printed as a
cross-check of the checkpoint-derived figures. Last, the three slowest micro-batches of each query
with the steps they spent their time in (the stream runs at ``EVENTLAKE_LOG_LEVEL=INFO`` for its
"pass batch" lines; its log is kept at ``--log``).

Run: ``make soak`` or ``.venv/bin/python bench/soak.py [--rate 10000] [--duration 600] [--every 10]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
from deltalake import DeltaTable

from eventlake.config import Settings, load_settings
from eventlake.observability.dashboard import histograms, streaming_metrics_url
from eventlake.observability.lag import high_watermarks
from eventlake.services import endpoints
from eventlake.streaming.pipeline import query_name

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import cpu_seconds, pipeline_parts, rss_bytes
from pipeline import EVENTLAKE, SOURCES, home_env, local_stack, start_producer, stop_producer

SHORT = {"user_activity": "ua", "iot_sensors": "iot", "transactions": "txn"}
PROCESSES = ("producer", "driver", "jvm", "workers", "serving")
LAYERS = ("bronze", "silver", "quarantine", "gold")
LEGEND = (
    "columns: t_s since the start of sampling; ev/s produced since the last row; rss_MB per process;"
    " lake_lag / serving_lag: records behind the end offsets per source (lake: Spark's committed offsets;"
    " serving: its stored positions); batch_s: the last committed micro-batch per query; files: active"
    " Delta files per layer; load: the machine's 1-min load average; busy%: its CPU use (all cores) since the last row"
)
#: the windows the summary compares batch durations over, at the start and the end of the phase
EDGE_S = 120.0


@dataclass
class Sample:
    """One row; ``t`` is seconds since sampling began (the producer starts ``--settle`` seconds later)."""

    t: float
    produced: int
    rss_mb: dict[str, float | None]
    cpu_s: dict[str, float]  # cumulative CPU seconds of each process (group) alive at the sample
    lake_lag: dict[str, int]
    serving_lag: dict[str, int | None]
    last_batch_s: dict[str, float | None]
    files: dict[str, int]
    load1: float  # the machine's 1-minute load average (2 cores, shared)
    busy: float  # the machine's CPU busy %, all cores, since the previous sample


@dataclass
class Checkpoints:
    """Every committed micro-batch of each query, read from its checkpoint as it appears.

    Spark writes ``offsets/<n>`` (the batch's end offsets, and ``batchTimestampMs``, when it planned
    the batch) before the batch and ``commits/<n>`` after its sink (the whole ``foreachBatch``) has
    finished, each by a rename: a file that is there is complete."""

    root: Path
    #: query -> batch number -> (wall-clock end, seconds, records read: its end offsets minus the last batch's)
    batches: dict[str, dict[int, tuple[float, float, int]]] = field(default_factory=dict)
    committed: dict[str, dict[str, dict[int, int]]] = field(default_factory=dict)  # query -> topic -> p -> off

    def started(self, query: str) -> bool:
        return (self.root / query / "metadata").exists()

    def poll(self) -> None:
        for source in SOURCES:
            query = query_name(source)
            commits = self.root / query / "commits"
            if not commits.is_dir():
                continue
            seen = self.batches.setdefault(query, {})
            done = sorted(int(f.name) for f in commits.iterdir() if f.name.isdigit())
            for n in done:
                if n in seen:
                    continue
                planned_ms, ends = self._offsets(query, n)
                before = self._offsets(query, n - 1)[1] if n else {}  # batch 0 starts at the earliest offsets
                end = (commits / str(n)).stat().st_mtime
                records = sum(o - before.get(t, {}).get(p, 0) for t, parts in ends.items() for p, o in parts.items())
                seen[n] = (end, end - planned_ms / 1000, records)
            if done:
                self.committed[query] = self._offsets(query, done[-1])[1]

    def _offsets(self, query: str, n: int) -> tuple[int, dict[str, dict[int, int]]]:
        """Batch ``n``'s ``batchTimestampMs`` and end offsets (topic -> partition -> offset)."""
        lines = (self.root / query / "offsets" / str(n)).read_text().splitlines()
        ends = json.loads(lines[2])
        return json.loads(lines[1])["batchTimestampMs"], {
            t: {int(p): int(o) for p, o in parts.items()} for t, parts in ends.items()
        }

    def last(self, query: str) -> float | None:
        seen = self.batches.get(query, {})
        return seen[max(seen)][1] if seen else None

    def listing(self, query: str, wall0: float) -> str:
        """Every committed batch of ``query``: when it ended (t), how long it took, how many records it read."""
        seen = self.batches.get(query, {})
        return "  ".join(f"t={end - wall0:.0f}:{s:.1f}s/{n}" for end, s, n in (seen[k] for k in sorted(seen)))


def lag(ends: dict[str, dict[int, int]], position: dict[str, dict[int, int]], topic: str) -> int:
    """Records of ``topic`` behind its end offsets (a partition without a position: from its start)."""
    have = position.get(topic, {})
    return sum(max(0, end - have.get(p, 0)) for p, end in ends.get(topic, {}).items())


def serving_positions(postgres_url: str) -> dict[str, dict[int, int]] | None:
    """The serving path's next offsets per topic and partition; None before it created its table."""
    with psycopg.connect(postgres_url, connect_timeout=5) as conn:
        try:
            rows = conn.execute("SELECT topic, kafka_partition, next_offset FROM eventlake_serving_offsets").fetchall()
        except psycopg.errors.UndefinedTable:
            return None
    out: dict[str, dict[int, int]] = {}
    for topic, partition, offset in rows:
        out.setdefault(topic, {})[partition] = offset
    return out


def delta_files(lake: Path) -> dict[str, int]:
    """Active data files of every Delta table under ``lake`` (``<layer>/<name>``), by table."""
    out: dict[str, int] = {}
    for log in sorted(lake.glob("*/*/_delta_log")):
        table = log.parent
        out[f"{table.parent.name}/{table.name}"] = len(DeltaTable(str(table)).file_uris())
    return out


class Processes:
    """The producer and the streaming process with its parts (rediscovered each time: the supervisor
    may restart the serving process)."""

    def __init__(self, stream: psutil.Process) -> None:
        self.stream = stream
        self.producer: psutil.Process | None = None

    def groups(self) -> dict[str, list[psutil.Process]]:
        parts = pipeline_parts(self.stream)
        return {"producer": [self.producer] if self.producer else [], "driver": [self.stream], **parts}

    def sample(self) -> tuple[dict[str, float | None], dict[str, float]]:
        """RSS (MB) and cumulative CPU seconds of each group."""
        rss_mb: dict[str, float | None] = {}
        cpu_s: dict[str, float] = {}
        for name, procs in self.groups().items():
            rss = rss_bytes(procs)
            rss_mb[name] = None if rss is None else rss / 2**20
            cpu = 0.0
            for p in procs:
                try:
                    cpu += cpu_seconds(p)
                except psutil.Error:
                    continue  # exited meanwhile: its CPU is lost, as in a `ps` reading
            if rss is not None:
                cpu_s[name] = cpu
        return rss_mb, cpu_s


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute; None with fewer than 3."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (of a handful of batches: no interpolation between them)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _cell(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def header() -> str:
    srcs = " ".join(f"{SHORT[s]:>7}" for s in SOURCES)
    qs = " ".join(f"{SHORT[s]:>5}" for s in SOURCES)
    rss = " ".join(f"{p[:6]:>6}" for p in PROCESSES)
    files = " ".join(f"{layer[:6]:>6}" for layer in LAYERS)
    return (
        f"sample {'t_s':>6} {'ev/s':>6} | rss_MB {rss} | lake_lag {srcs} | serving_lag {srcs}"
        f" | batch_s {qs} | files {files} | {'load':>5} {'busy%':>5}"
    )


def row(s: Sample, rate: float) -> str:
    rss = " ".join(f"{_cell(s.rss_mb.get(p), '.0f'):>6}" for p in PROCESSES)
    lake = " ".join(f"{s.lake_lag[src]:>7}" for src in SOURCES)
    serving = " ".join(f"{_cell(s.serving_lag[src], 'd'):>7}" for src in SOURCES)
    batch = " ".join(f"{_cell(s.last_batch_s[query_name(src)], '.1f'):>5}" for src in SOURCES)
    files = " ".join(f"{sum(n for t, n in s.files.items() if t.startswith(layer + '/')):>6}" for layer in LAYERS)
    return (
        f"sample {s.t:6.0f} {rate:6.0f} | rss_MB {rss} | lake_lag {lake} | serving_lag {serving}"
        f" | batch_s {batch} | files {files} | {s.load1:5.2f} {s.busy:5.0f}"
    )


class Soak:
    """The sampling of one run; ``samples`` in order."""

    def __init__(self, settings: Settings, stream: psutil.Process) -> None:
        self.settings = settings
        self.live = endpoints(settings)
        self.topics = {s: settings.topics.raw(s) for s in SOURCES}
        self.checkpoints = Checkpoints(Path(settings.home) / "checkpoints")
        self.procs = Processes(stream)
        self.lake = Path(settings.home) / "lake"
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()

    def sample(self) -> Sample:
        ends = high_watermarks(self.live.kafka_bootstrap, list(self.topics.values()))
        self.checkpoints.poll()
        served = serving_positions(self.live.postgres_url)
        rss_mb, cpu_s = self.procs.sample()
        s = Sample(
            t=time.monotonic() - self.t0,
            produced=sum(sum(parts.values()) for parts in ends.values()),
            rss_mb=rss_mb,
            cpu_s=cpu_s,
            lake_lag={
                src: lag(ends, self.checkpoints.committed.get(query_name(src), {}), t) for src, t in self.topics.items()
            },
            serving_lag={src: None if served is None else lag(ends, served, t) for src, t in self.topics.items()},
            last_batch_s={query_name(src): self.checkpoints.last(query_name(src)) for src in SOURCES},
            files=delta_files(self.lake),
            load1=os.getloadavg()[0],
            busy=psutil.cpu_percent(),
        )
        self.samples.append(s)
        return s

    def run(self, seconds: float, every: float, until: Callable[[Sample], bool] | None = None) -> None:
        """Sample every ``every`` s for ``seconds`` (or until ``until(sample)``), printing each row."""
        start = time.monotonic()
        k = 0
        while True:
            prev = self.samples[-1] if self.samples else None
            s = self.sample()
            rate = (s.produced - prev.produced) / (s.t - prev.t) if prev and s.t > prev.t else 0.0
            print(row(s, rate), flush=True)
            if self.procs.stream.status() == psutil.STATUS_ZOMBIE or not self.procs.stream.is_running():
                raise RuntimeError("the streaming process ended during the soak; see its log")
            k += 1
            if (until is not None and until(s)) or k * every > seconds + 1e-6:  # the next one is past the span
                return
            time.sleep(max(0.0, start + k * every - time.monotonic()))


def _verdict_rss(name: str, phase: list[Sample]) -> str:
    points = [(s.t, v) for s in phase if (v := s.rss_mb.get(name)) is not None]
    if not points:
        return f"summary rss {name:<9} not running"
    cpu = [(s.t, s.cpu_s[name]) for s in phase if name in s.cpu_s]
    cores = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) if len(cpu) > 1 else None
    values = [v for _, v in points]
    span = phase[-1].t - phase[0].t
    slope = slope_per_min([p for p in points if p[0] >= phase[0].t + span / 3])
    # The last third too: a JVM grows its heap for minutes before it levels off, inside the last 2/3.
    last_third = slope_per_min([p for p in points if p[0] >= phase[0].t + 2 * span / 3])
    flat = "n/a" if slope is None else ("yes" if slope * 60 < 0.10 * values[-1] else "no")
    used = f"  cpu {cores:.2f} cores" if cores is not None else ""
    return (
        f"summary rss {name:<9} start {values[0]:6.0f} MB  end {values[-1]:6.0f} MB  peak {max(values):6.0f} MB"
        f"  slope {_cell(slope, '+.2f')} MB/min (last 2/3; last 1/3 {_cell(last_third, '+.2f')}){used}  flat {flat}"
    )


def _verdict_lag(path: str, source: str, phase: list[Sample], per_source_rate: float) -> str:
    get: Callable[[Sample], int | None] = (
        (lambda s: s.lake_lag[source]) if path == "lake" else (lambda s: s.serving_lag[source])
    )
    points = [(s.t, float(v)) for s in phase if (v := get(s)) is not None]
    if not points:
        return f"summary lag {path:<7} {source:<13} no positions"
    half = [p for p in points if p[0] >= phase[0].t + (phase[-1].t - phase[0].t) / 2]
    slope = slope_per_min(half)
    share = None if slope is None else 100 * slope / (per_source_rate * 60)
    bounded = "n/a" if share is None else ("yes" if share < 1.0 else "no")
    return (
        f"summary lag {path:<7} {source:<13} max {max(v for _, v in points):9.0f}  end {points[-1][1]:9.0f}"
        f"  slope {_cell(slope, '+.0f')} records/min (last half, {_cell(share, '+.1f')} % of its rate)"
        f"  bounded {bounded}"
    )


def _batches_line(query: str, batches: dict[int, tuple[float, float, int]], lo: float, hi: float) -> str:
    """p50/p99 of the batches that ended in the first and in the last :data:`EDGE_S` of [lo, hi]."""

    def part(a: float, b: float) -> str:
        d = [s for end, s, _ in batches.values() if a <= end <= b]
        if not d:
            return "no batches"
        return f"p50 {percentile(d, 50):5.1f} s  p99 {percentile(d, 99):5.1f} s  n {len(d):3d}"

    return f"summary batch {query:<24} first 2 min {part(lo, lo + EDGE_S)}  |  last 2 min {part(hi - EDGE_S, hi)}"


def _metrics_cross_check(settings: Settings) -> None:
    """The listener's view of the same batches (the streaming process's histogram): count and mean."""
    url = streaming_metrics_url(settings)
    if url is None:
        print("crosscheck metrics unavailable (no streaming record)", flush=True)
        return
    _, hists = histograms(httpx.get(f"{url}/metrics", timeout=10).text)
    for query, h in sorted(hists.items()):
        mean = h.total / h.count if h.count else float("nan")
        print(f"crosscheck listener {query:<24} batches {h.count:.0f}  mean {mean:5.1f} s (whole run)", flush=True)


def slowest_batches(log: Path, n: int = 3) -> list[str]:
    """The ``n`` slowest micro-batches of each query, from the "pass batch" lines of the streaming log,
    with the steps they spent their time in (where a slow batch goes is otherwise lost with the run).

    A batch's time is the sum of its steps on the query's own thread; the writes on side threads
    (``delta:...``, ``kafka:...``) overlap them and are listed, not added."""
    batches: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{") or '"pass batch"' not in line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the process's end
        steps: dict[str, float] = entry.get("seconds") or {}
        total = sum(v for k, v in steps.items() if ":" not in k)
        batches.setdefault(str(entry.get("query")), []).append((total, steps))
    out = []
    for query, items in sorted(batches.items()):
        for total, steps in sorted(items, key=lambda b: -b[0])[:n]:
            top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])[:5])
            out.append(f"summary slow batch {query:<24} {total:6.1f} s  of {len(items)} batches  steps: {top}")
    return out


def summary(soak: Soak, phase_start: float, phase_end: float, rate: float, drained: dict[str, float | None]) -> None:
    phase = [s for s in soak.samples if phase_start <= s.t <= phase_end + 1]
    seconds = phase[-1].t - phase[0].t
    for name in PROCESSES:
        print(_verdict_rss(name, phase), flush=True)
    for path in ("lake", "serving"):
        for source in SOURCES:
            print(_verdict_lag(path, source, phase, rate / len(SOURCES)), flush=True)
    wall0 = time.time() - (time.monotonic() - soak.t0)  # the wall clock of t = 0
    for source in SOURCES:
        query = query_name(source)
        batches = soak.checkpoints.batches.get(query, {})
        print(_batches_line(query, batches, wall0 + phase_start, wall0 + phase_end), flush=True)
    for source in SOURCES:
        query = query_name(source)
        print(f"batches {query:<24} {soak.checkpoints.listing(query, wall0)}", flush=True)
    a, b = phase[0], phase[-1]
    lake = (b.produced - sum(b.lake_lag.values())) - (a.produced - sum(a.lake_lag.values()))
    print(
        f"summary throughput lake path committed {lake / seconds:.0f} ev/s in total over the produce phase"
        f" (records read by committed batches; produced {(b.produced - a.produced) / seconds:.0f} ev/s)",
        flush=True,
    )
    first, last = phase[0].files, phase[-1].files
    for table in sorted(last):
        n0, n1 = first.get(table, 0), last[table]
        growth = (n1 - n0) / seconds * 60
        print(f"summary files {table:<38} start {n0:5d}  end {n1:5d}  {growth:+7.1f} files/min", flush=True)
    produced = phase[-1].produced - phase[0].produced
    print(
        f"summary producer asked {rate:g} ev/s in total, achieved {produced / seconds:.0f} ev/s"
        f" ({produced} records in {seconds:.0f} s)",
        flush=True,
    )
    loads = [s.load1 for s in phase]
    busy = statistics.fmean([s.busy for s in phase[1:]]) if len(phase) > 1 else float("nan")
    print(
        f"summary machine load1 min {min(loads):.2f} mean {statistics.fmean(loads):.2f} max {max(loads):.2f}"
        f"  cpu busy {busy:.0f} % of {os.cpu_count()} cores (produce phase)",
        flush=True,
    )
    for path, s in drained.items():
        took = "not caught up" if s is None else f"caught up {s:.0f} s"
        print(f"summary drain {path:<7} {took} after the producer stopped", flush=True)


@contextmanager
def streaming(home: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``eventlake stream`` (all jobs, until stopped) with its output in ``log``; SIGINT on the way out
    (it stops between micro-batches, as Ctrl-C does), then SIGKILL if it has not ended in 120 s."""
    with log.open("wb") as out:
        # INFO: each micro-batch's "pass batch" line with its steps' seconds (see ``slowest_batches``).
        env = {**home_env(home), "EVENTLAKE_LOG_LEVEL": "INFO"}
        proc = subprocess.Popen([EVENTLAKE, "stream"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    print("streaming process did not stop in 120 s; killed", flush=True)
                    proc.kill()
                    proc.wait(timeout=30)
            print(f"streaming process exited {proc.returncode}", flush=True)


def wait_started(soak: Soak, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    """Seconds until every query has created its checkpoint (it is running); raises if the process ends."""
    t = time.monotonic()
    while not all(soak.checkpoints.started(query_name(s)) for s in SOURCES):
        if proc.poll() is not None:
            raise RuntimeError(f"eventlake stream exited {proc.returncode} before its queries started")
        if time.monotonic() - t > timeout_s:
            raise TimeoutError(f"the queries did not start in {timeout_s:g} s")
        time.sleep(1)
    return time.monotonic() - t


def run(home: Path, args: argparse.Namespace) -> None:
    env = home_env(home)
    subprocess.run([EVENTLAKE, "topics", "create"], env=env, check=True, capture_output=True)
    settings = load_settings(home=home)
    with streaming(home, args.log) as proc:
        soak = Soak(settings, psutil.Process(proc.pid))
        print(f"streaming queries started in {wait_started(soak, proc, 300):.0f} s", flush=True)
        print(LEGEND, flush=True)
        print(header(), flush=True)
        soak.run(args.settle, args.every)  # the idle pipeline: its RSS before any record
        print(f"producer starting: {args.rate:g} ev/s in total for {args.duration:g} s", flush=True)
        producer = start_producer(env, args.rate)
        try:
            soak.procs.producer = psutil.Process(producer.pid)
            phase_start = soak.samples[-1].t
            soak.run(args.duration, args.every)
            phase_end = soak.samples[-1].t
        finally:
            stop_producer(producer)
        soak.procs.producer = None
        stopped = time.monotonic() - soak.t0
        caught: dict[str, float | None] = {"lake": None, "serving": None}

        def caught_up(s: Sample) -> bool:
            if caught["lake"] is None and not any(s.lake_lag.values()):
                caught["lake"] = s.t - stopped
            if caught["serving"] is None and all(v == 0 for v in s.serving_lag.values()):
                caught["serving"] = s.t - stopped
            return None not in caught.values()

        print(f"producer stopped; sampling until both paths caught up (at most {args.drain:g} s)", flush=True)
        soak.run(args.drain, args.every, until=caught_up)
        _metrics_cross_check(settings)
        summary(soak, phase_start, phase_end, args.rate, caught)
    for line in slowest_batches(args.log):
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=10_000, help="ev/s in total over the three sources")
    parser.add_argument("--duration", type=float, default=600, help="seconds of producing at --rate")
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    parser.add_argument("--settle", type=float, default=20, help="seconds sampled idle before the producer starts")
    parser.add_argument("--drain", type=float, default=180, help="at most this many seconds sampled after it stops")
    parser.add_argument(
        "--log", type=Path, default=Path(tempfile.gettempdir()) / "eventlake-soak-stream.log", help="its output"
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"soak {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  rate {args.rate:g} ev/s in total"
        f"  duration {args.duration:g} s"
        f"  every {args.every:g} s  cpus {os.cpu_count()}  load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        f"  stream log {args.log}",
        flush=True,
    )
    with local_stack("bench-soak-") as home:
        run(home, args)
    load = os.getloadavg()
    print(f"soak done {dt.datetime.now(dt.UTC):%H:%M} UTC  load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)


if __name__ == "__main__":
    main()
