"""Run the jobs: a short function from config to queries (and, with ``until_idle``, to completion)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import REGISTRY
from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from eventlake.alerting.dispatcher import Dispatcher
from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.errors import EventlakeError
from eventlake.kafka.security import client_security
from eventlake.observability.lag import LagCollector, Offsets
from eventlake.observability.server import dependency_checks, down, kafka_check, postgres_check, serve_health
from eventlake.quality.checks import require_java_regexes
from eventlake.quality.rules import load_quality
from eventlake.quality.store import ensure_quality_tables
from eventlake.serving.offsets import ensure_offsets_table
from eventlake.serving.offsets import load as load_positions
from eventlake.serving.runner import ServingProcess
from eventlake.sources.produce import produce
from eventlake.stopping import stop_on_signals
from eventlake.streaming.lock import LakeLock
from eventlake.streaming.paths import checkpoint, committed_offsets
from eventlake.streaming.pipeline import LAYERS, OnePass, query_name, start_pass
from eventlake.streaming.progress import ProgressRecorder, QueryProgress, kafka_offsets
from eventlake.streaming.schemas import require_subjects
from eventlake.streaming.silver import SilverCounts
from eventlake.streaming.specs import GOLD_SPECS, ensure_gold_table
from eventlake.streaming.state import ensure_state_tables, pending_reset
from eventlake.streaming.supervisor import RestartPolicy, Supervisor
from eventlake.streaming.tables import ensure_tables

log = logging.getLogger(__name__)

JOBS = LAYERS
#: how often a running pipeline checks that it still holds its lake's lock
LOCK_CHECK_S = 5.0


class PipelineStoppedError(EventlakeError):
    """The pipeline cannot go on: a component used up its restart budget, or another took the lake."""


def start_jobs(
    spark: SparkSession,
    settings: Settings,
    live: Endpoints,
    jobs: Sequence[str],
    *,
    until_idle: bool,
    counts: dict[str, SilverCounts] | None = None,
    poll: Callable[[], None] | None = None,
    serving: ServingProcess | None = None,
    postgres_ready: bool = False,
    hand_off: bool | None = None,
) -> Jobs:
    """Start one one-pass query per source, writing the asked layers (``jobs``; gold implies silver).
    With ``until_idle`` each runs to completion (``availableNow``) before this returns, calling ``poll``
    about once a second meanwhile. ``postgres_ready``: the caller has created the PostgreSQL tables
    (:func:`_ensure_postgres`) already. ``hand_off``: the passes write PostgreSQL gold and hand the
    serving path its positions (None: :func:`hands_off` decides; never with a ``serving`` given)."""
    t = time.monotonic()
    quality = load_quality(settings)  # a bad rules file stops us before any query starts
    require_java_regexes(spark, quality, settings.quality.rules_file)
    rules_s = time.monotonic() - t
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ensure-postgres") as pool:
        # PostgreSQL's tables while the lake's are created: neither waits on the other.
        postgres = None if postgres_ready else pool.submit(_ensure_postgres, settings, live.postgres_url)
        ensure_tables(spark, settings, live.registry_url)
        if postgres is not None:
            postgres.result()
    log.info("lake tables ready", extra={"seconds": round(time.monotonic() - t, 3), "rules_s": round(rules_s, 3)})
    counts = counts if counts is not None else {}
    started: list[tuple[StreamingQuery, OnePass]] = []
    decide = hand_off is None and serving is None
    hand_off = hands_off(settings, live, jobs, until_idle=until_idle) if decide else bool(hand_off)
    if serving is None and "gold" in jobs and not hand_off:  # ``serving``: already started by the caller
        serving = _start_serving(settings, live, until_idle=until_idle)
    # Until idle, the serving path runs beside the passes: PostgreSQL gold is complete only when it
    # is done, so the anomaly detectors (which read it) run once, then, instead of after each batch.
    detect_at_end = until_idle and serving is not None

    def start(source: str) -> tuple[StreamingQuery, OnePass]:
        return start_pass(
            spark,
            settings,
            source,
            live,
            layers=set(jobs),
            until_idle=until_idle,
            counts=counts.setdefault(source, SilverCounts()),
            rules=quality.source(source),
            detectors=quality.detectors,
            detect_each_batch=not detect_at_end,
            hand_off=hand_off,
        )

    try:
        for source in settings.topics.sources:
            started.append(start(source))
        log.info("queries started", extra={"seconds": round(time.monotonic() - t, 3), "hand_off": hand_off})
        if until_idle:
            _await_all(started, poll, serving)
    except BaseException:
        for q, _ in started:
            if q.isActive:
                q.stop()
        if serving is not None:
            serving.stop()
        raise
    finally:
        if until_idle:
            for _, process in started:
                process.flush()
                process.close()
    if until_idle:
        serving = None  # it ended with the passes
    restart_serving = (lambda: ServingProcess(settings, live).start()) if serving is not None else None
    dependencies = dependency_checks(live, client_security(settings))
    return Jobs(
        started,
        serving,
        restart_pass=start,
        restart_serving=restart_serving,
        policy=restart_policy(settings),
        outage=lambda: down(dependencies),
    )


def restart_policy(settings: Settings) -> RestartPolicy:
    cfg = settings.streaming
    return RestartPolicy(
        max_restarts=cfg.max_restarts, window_s=cfg.restart_window_s, max_backoff_s=cfg.restart_backoff_max_s
    )


def _await_all(
    started: list[tuple[StreamingQuery, OnePass]], poll: Callable[[], None] | None, serving: ServingProcess | None
) -> None:
    """Wait for every query to end, then for the ``serving`` process beside them, then run the
    passes' anomaly detectors on the now complete PostgreSQL gold."""
    for q, _ in started:
        while not q.awaitTermination(1):
            if poll is not None:
                poll()
        if q.exception() is not None:
            raise query_failed(q)
    if serving is not None:
        serving.finish(poll)
        for _, process in started:
            process.detect()


def hands_off(settings: Settings, live: Endpoints, jobs: Sequence[str], *, until_idle: bool) -> bool:
    """Whether this run's passes write PostgreSQL gold and hand the serving path its positions
    (:mod:`eventlake.serving.handoff`) instead of running it beside them: until idle, with gold and
    the serving path on (``serving.hand_off_until_idle``), and only when the serving path is behind no
    pass (its positions at or past each checkpoint's last committed offsets: records the pass read
    before but the serving path did not would otherwise be missing from PostgreSQL gold until its
    next start). Needs local checkpoints (their offsets are read here) and no pending reset."""
    cfg = settings.serving
    if not (until_idle and "gold" in jobs and cfg.enabled and cfg.hand_off_until_idle):
        return False
    url = live.postgres_url
    stored = load_positions(url, [settings.topics.raw(s) for s in settings.topics.sources])
    for source in settings.topics.sources:
        name = query_name(source)
        location = checkpoint(settings, name)
        if "://" in location or pending_reset(url, name) is not None:
            log.info("the serving path runs beside the passes", extra={"query": name, "why": "remote or reset"})
            return False
        for topic, parts in kafka_offsets(committed_offsets(location)).items():
            behind = [
                p
                for p, offset in parts.items()
                if offset > 0 and ((pos := stored.get((topic, p))) is None or pos.next_offset < offset)
            ]
            if behind:
                log.info("the serving path runs beside the passes", extra={"topic": topic, "behind_on": behind})
                return False
    return True


def _start_serving(settings: Settings, live: Endpoints, *, until_idle: bool) -> ServingProcess | None:
    """The serving path (PostgreSQL gold) in its process, if on; ``until_idle``: one that exits when
    it has applied what the raw topics hold (it runs beside the Spark passes: two cores busy)."""
    if not settings.serving.enabled:
        return None
    return ServingProcess(settings, live, until_idle=until_idle).start()


class Jobs(list[StreamingQuery]):
    """The started queries (a list, as Spark gives them), with their batch functions for a graceful
    ``stop``, and what :meth:`supervise` needs to restart a failed query or the serving path."""

    def __init__(
        self,
        started: list[tuple[StreamingQuery, OnePass]],
        serving: ServingProcess | None = None,
        *,
        restart_pass: Callable[[str], tuple[StreamingQuery, OnePass]],
        restart_serving: Callable[[], ServingProcess] | None = None,
        policy: RestartPolicy,
        outage: Callable[[], list[str]] = list,
    ) -> None:
        super().__init__(q for q, _ in started)
        self.passes = [p for _, p in started]
        self.serving = serving
        self._restart_pass, self._restart_serving = restart_pass, restart_serving
        self.supervisor = Supervisor(policy)
        self._outage = outage  # the dependencies that do not answer now (a failure then is an outage's)

    def _failed(self, component: str, error: str) -> str | None:
        return self.supervisor.failed(component, error, self._outage())

    def supervise(self) -> str | None:
        """Restart each failed query from its checkpoint, and the serving path, once their backoff
        is over; why the pipeline must stop, if a component used up its restart budget."""
        for i, q in enumerate(list(self)):
            if q.isActive or q.exception() is None:
                continue
            p = self.passes[i]
            if not self.supervisor.pending(p.name):
                p.close()
                if (why := self._failed(p.name, str(query_failed(q)))) is not None:
                    return why
            if self.supervisor.due(p.name):
                try:
                    self[i], self.passes[i] = self._restart_pass(p.source)
                except Exception as err:  # e.g. PostgreSQL still down: counts as another failure
                    self.supervisor.retry_failed(p.name)
                    if (why := self._failed(p.name, f"restart failed: {err!r}")) is not None:
                        return why
                    continue
                self.supervisor.restarted(p.name)
        if self.serving is not None and (gone := self.serving.failure()) is not None:
            if self._restart_serving is None:
                return gone
            if not self.supervisor.pending("serving") and (why := self._failed("serving", gone)) is not None:
                return why
            if self.supervisor.due("serving"):
                self.serving = self._restart_serving()
                self.supervisor.restarted("serving")
        return None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the serving path (it writes what it holds), each query between micro-batches (or after
        ``timeout_s``), then write the open windows to Delta gold so it matches PostgreSQL."""
        if self.serving is not None:
            self.serving.stop(timeout_s)
        _stop_between_batches(list(self), timeout_s)
        for q, p in zip(self, self.passes, strict=True):
            # A failed query's state went with its failed batch; the next start replays that batch.
            if q.exception() is None:
                try:
                    p.flush()
                except Exception:
                    log.exception("flushing open windows to Delta gold failed", extra={"query": p.name})
            p.close()


def _ensure_postgres(settings: Settings, url: str) -> None:
    ensure_state_tables(url)
    ensure_offsets_table(url)
    ensure_quality_tables(url)
    for spec in GOLD_SPECS:
        if spec.source in settings.topics.sources:
            ensure_gold_table(url, spec)


def run_jobs(
    settings: Settings,
    live: Endpoints,
    jobs: Sequence[str],
    *,
    until_idle: bool,
    on_progress: Callable[[dict[str, QueryProgress]], None] | None = None,
    progress_every_s: float = 15.0,
    stop: threading.Event | None = None,
    feed: DemoFeed | None = None,
    on_offsets: Callable[[dict[str, Offsets]], None] | None = None,
) -> dict[str, SilverCounts]:
    """The running pipeline: Spark, the queries, the alert dispatcher, ``/metrics`` + ``/health``, and
    (``feed``) a generated stream into the raw topics, as ``eventlake run`` shows.

    Without ``until_idle`` it blocks until ``stop`` is set (None: until SIGTERM/Ctrl-C, which
    needs the main thread), then stops the queries between micro-batches. The serving path then runs
    in a process of its own, started with multiprocessing's ``spawn``: a script that calls this must
    guard its entry point with ``if __name__ == "__main__":``. With it, ``on_offsets``
    gets the offsets each query has read up to, about once a second (a progress bar's input).
    """
    load_quality(settings)  # fail fast, before Spark starts
    lock = LakeLock(live.postgres_url, settings.lake_uri).acquire()  # one pipeline per lake
    try:
        require_subjects(live.registry_url, [f"{settings.topics.raw(s)}-value" for s in settings.topics.sources])
        return _run(
            settings,
            live,
            jobs,
            lock=lock,
            until_idle=until_idle,
            on_progress=on_progress,
            progress_every_s=progress_every_s,
            stop=stop,
            feed=feed,
            on_offsets=on_offsets,
        )
    finally:
        lock.release()


def _run(
    settings: Settings,
    live: Endpoints,
    jobs: Sequence[str],
    *,
    lock: LakeLock,
    until_idle: bool,
    on_progress: Callable[[dict[str, QueryProgress]], None] | None,
    progress_every_s: float,
    stop: threading.Event | None,
    feed: DemoFeed | None,
    on_offsets: Callable[[dict[str, Offsets]], None] | None,
) -> dict[str, SilverCounts]:
    from eventlake.streaming.session import build_spark  # noqa: PLC0415 - keeps pyspark out of module import

    # Before Spark (15-40 s to a session and the lake tables), once: a PostgreSQL problem shows at
    # once, and (not until idle) PostgreSQL gold moves from the start.
    _ensure_postgres(settings, live.postgres_url)
    hand_off = hands_off(settings, live, jobs, until_idle=until_idle)
    # Started before Spark, which takes 15-40 s to a session: PostgreSQL gold moves from the start.
    serving = _start_serving(settings, live, until_idle=until_idle) if "gold" in jobs and not hand_off else None
    feeding = threading.Event()
    producer = feed.start(settings, live, feeding) if feed is not None else None  # the demo's data, from now
    try:
        spark = build_spark(settings, s3_endpoint=live.s3_endpoint)
    except BaseException:
        feeding.set()
        if serving is not None:
            serving.stop()
        raise
    recorder = ProgressRecorder()
    spark.streams.addListener(recorder)
    counts: dict[str, SilverCounts] = {}
    dispatcher = Dispatcher(settings, live.postgres_url, live.kafka_bootstrap).start()
    security = client_security(settings)
    lag = LagCollector(live.kafka_bootstrap, recorder.kafka_offsets, security)
    REGISTRY.register(lag)
    running: list[Jobs] = []
    checks = {
        "kafka": kafka_check(live.kafka_bootstrap, security),
        "postgres": postgres_check(live.postgres_url),
        "queries": lambda: _queries_ok(recorder),
        "restarts": lambda: (True, running[0].supervisor.summary() if running else "no restarts"),
        # The dispatcher survives its own errors; should its thread still end, readiness says so.
        "alerts": lambda: (dispatcher.alive, "dispatcher running" if dispatcher.alive else "dispatcher thread ended"),
    }
    server = serve_health(settings, "streaming", checks, settings.metrics.streaming_port)
    try:
        poll = (lambda: on_offsets(recorder.kafka_offsets())) if on_offsets is not None else None
        queries = start_jobs(
            spark,
            settings,
            live,
            jobs,
            until_idle=until_idle,
            counts=counts,
            poll=poll,
            serving=serving,
            postgres_ready=True,
            hand_off=hand_off,
        )
        running.append(queries)
        if not until_idle:
            _wait(queries, lock=lock, recorder=recorder, on_progress=on_progress, every_s=progress_every_s, stop=stop)
        elif on_progress is not None:
            time.sleep(1)  # listener events arrive asynchronously
            on_progress(recorder.snapshot())
        return counts
    finally:
        feeding.set()
        if producer is not None:
            producer.join(timeout=30)
        spark.streams.removeListener(recorder)
        server.stop()
        REGISTRY.unregister(lag)
        lag.close()
        # Until idle: give the alerts of this run a bounded chance to go out.
        dispatcher.stop(drain_s=15 if until_idle else 0)


@dataclass(frozen=True)
class DemoFeed:
    """A steady generated stream (``rate`` ev/s per source, a ``faults`` fraction labelled bad) into the
    raw topics while the jobs run: the live demo's input."""

    rate: float
    faults: float = 0.0

    def start(self, settings: Settings, live: Endpoints, stop: threading.Event) -> threading.Thread:
        def feed() -> None:
            try:
                produce(
                    settings,
                    bootstrap=live.kafka_bootstrap,
                    registry_url=live.registry_url,
                    sources=list(settings.topics.sources),
                    count=None,
                    rate=self.rate,
                    faults=self.faults,
                    stop=stop,
                )
            except EventlakeError as ex:
                log.error("demo producer stopped", extra={"error": str(ex)})

        thread = threading.Thread(target=feed, name="demo-producer", daemon=True)
        thread.start()
        return thread


def root_cause(text: str) -> str:
    """The exception line a failed ``foreachBatch`` raised, out of Spark's wrapping.

    A query's exception wraps the Python traceback and ends with the query's logical plan, so its
    first and last lines never say what went wrong; the exception line after the last traceback does.
    """
    text = text.partition("=== Streaming Query ===")[0]
    tb = text.rfind("Traceback (most recent call last):")
    if tb < 0:
        return text.strip().splitlines()[0] if text.strip() else "unknown error"
    lines = text[tb:].splitlines()[1:]
    for i, line in enumerate(lines):
        if line and not line.startswith(" "):
            return "\n".join(lines[i : i + 3]).strip()
    return "unknown error"


def query_failed(q: StreamingQuery) -> RuntimeError:
    """The error ``run_jobs`` raises for a failed query: its root cause first, Spark's whole text after."""
    full = str(q.exception())
    return RuntimeError(f"query {q.name} failed: {root_cause(full)}\n\n{full}")


def _queries_ok(recorder: ProgressRecorder) -> tuple[bool, str]:
    failed = [f"{q.name}: {q.error}" for q in recorder.snapshot().values() if q.error]
    return (not failed, "; ".join(failed) or "no failed query")


def _wait(
    queries: Jobs,
    *,
    lock: LakeLock,
    recorder: ProgressRecorder,
    on_progress: Callable[[dict[str, QueryProgress]], None] | None,
    every_s: float,
    stop: threading.Event | None,
) -> None:
    if stop is None:
        with stop_on_signals() as sig:
            return _wait(queries, lock=lock, recorder=recorder, on_progress=on_progress, every_s=every_s, stop=sig)
    last_report = last_lock = time.monotonic()
    try:
        while not stop.is_set():
            failure = queries.supervise()
            if failure is None and time.monotonic() - last_lock >= LOCK_CHECK_S:
                failure, last_lock = lock.check(), time.monotonic()
            if failure is not None:
                log.error("the pipeline cannot go on; stopping it", extra={"error": failure[:3000]})
                raise PipelineStoppedError(root_cause(failure), "see the log for the whole error")
            if on_progress is not None and time.monotonic() - last_report >= every_s:
                on_progress(recorder.snapshot())
                last_report = time.monotonic()
            stop.wait(1.0)
    finally:
        log.info("stopping streaming queries")
        queries.stop()


def _stop_between_batches(queries: list[StreamingQuery], timeout_s: float = 10.0) -> None:
    """Stop each query when it is not inside a micro-batch (``stop()`` interrupts a running batch;
    exactly-once makes that safe: the batch is replayed on the next start). Gives up waiting after
    ``timeout_s`` and stops anyway, so Ctrl-C takes seconds."""
    deadline = time.monotonic() + timeout_s
    for q in queries:
        while q.isActive and q.status.get("isTriggerActive") and time.monotonic() < deadline:
            time.sleep(0.2)
        log.info("stopping query", extra={"query": q.name, "status": q.status.get("message")})
        q.stop()
