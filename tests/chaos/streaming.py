"""What the chaos tests share: a seeded producer and the pipeline (``run_jobs``) running in threads
while the test injects a fault, and a wait that fails as soon as the pipeline dies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from deltalake.exceptions import TableNotFoundError
from prometheus_client import REGISTRY

from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.registry.client import register_schemas
from eventlake.services import Stack, endpoints
from eventlake.sources.produce import ProduceSummary
from tests.conftest import MakeSettings
from tests.streaming import recompute
from tests.streaming.exact import assert_layers_exact
from tests.streaming.test_pipeline import START, assert_gold_matches, delta_rows, pipeline_settings
from tests.streams import jobs_running, send

#: the one source a chaos test streams
SOURCE = "transactions"


def restarts(component: str) -> float:
    """Restarts of a pipeline component by the supervisor so far, in this process."""
    return REGISTRY.get_sample_value("eventlake_pipeline_restarts_total", {"component": component}) or 0.0


@dataclass
class Producing:
    """A producer thread sending records of one source at ``rate``; ``summary`` once done."""

    thread: threading.Thread
    stop: threading.Event = field(default_factory=threading.Event)
    summary: list[ProduceSummary] = field(default_factory=list)
    failure: list[BaseException] = field(default_factory=list)

    def join(self, timeout_s: float) -> ProduceSummary:
        self.thread.join(timeout=timeout_s)
        assert not self.thread.is_alive(), f"the producer is still sending after {timeout_s:g} s"
        assert not self.failure, self.failure
        return self.summary[0]

    def finish(self, timeout_s: float) -> ProduceSummary:
        """Stop an endless producer (it flushes what is in flight) and return its tally."""
        self.stop.set()
        return self.join(timeout_s)


def start_producing(
    settings: Settings,
    live: Endpoints,
    source: str,
    count: int | None,
    *,
    rate: float,
    seed: int,
    faults: float = 0.03,
) -> Producing:
    """Seeded records (simulated clock from ``START``, ``faults`` labelled bad) into ``raw.<source>``:
    ``count`` of them, or (None) until :meth:`Producing.finish`, however long the pipeline takes to
    start (30-90 s on a busy 2-core machine), so a fault can fall while records are being produced."""
    producing = Producing(threading.Thread(target=lambda: None))

    stop = producing.stop

    def sending() -> None:
        try:
            sent = send(settings, live, [source], count, rate=rate, seed=seed, start_ms=START, faults=faults, stop=stop)
            producing.summary.append(sent)
        except BaseException as err:  # reported by join()
            producing.failure.append(err)

    producing.thread = threading.Thread(target=sending, name="chaos-producer", daemon=True)
    producing.thread.start()
    return producing


@dataclass
class Pipeline:
    """The pipeline running in a thread; ``failure`` holds what ended it early."""

    settings: Settings
    failure: list[BaseException] = field(default_factory=list)

    def until(self, check: Callable[[], bool], timeout_s: float, what: str) -> float:
        """Seconds until ``check()`` holds (fails the test after ``timeout_s``, or when the pipeline died)."""
        t = time.monotonic()
        while time.monotonic() - t < timeout_s:
            assert not self.failure, self.failure
            try:
                if check():
                    return time.monotonic() - t
            except (AssertionError, TableNotFoundError):
                pass  # not there yet
            time.sleep(1.0)
        raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")

    def caught_up(self, live: Endpoints, source: str, n: int) -> Callable[[], bool]:
        """A check: PostgreSQL gold equals the recompute of the raw topic (``n`` records, read once, now),
        and every valid event is in silver."""
        raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, self.settings.topics.raw(source), n)
        want = recompute.gold(source, raw.records)

        def check() -> bool:
            assert_gold_matches(self.settings, source, want, delta=False)
            return len(delta_rows(self.settings, "silver", source)) == len(raw.records)

        return check

    def settle(self, spark: Any, timeout_s: float = 180) -> float:
        """Seconds until every query of the pipeline runs, has finished a micro-batch since it (re)started,
        and is not inside one, once every record is through: silver and PostgreSQL gold are written
        before a batch's Delta gold MERGEs end, and a stop that has to interrupt a batch (after 10 s)
        leaves Delta gold without the open windows (docs/reliability.md). A query that failed and waits
        for its restart is not settled either: its open-window state went with its failed batch, so a
        stop then leaves its open windows to the next run's replay (found by the S3 outage of 300 s,
        whose first batch after the outage met a pooled connection the outage had reset)."""
        names = {f"pipeline_{source}" for source in self.settings.topics.sources}

        def settled() -> bool:
            running = {q.name: q for q in spark.streams.active if q.name in names}
            return running.keys() == names and all(
                q.lastProgress is not None and not q.status["isTriggerActive"] for q in running.values()
            )

        return self.until(settled, timeout_s, "every query running, out of its last batch")


def finish_and_catch_up(pipeline: Pipeline, producing: Producing, live: Endpoints, timeout_s: float = 300) -> int:
    """Stop the producer (every record it sent delivered, none failed) and wait until all of them are
    through PostgreSQL gold and silver; returns how many there are."""
    summary = producing.finish(timeout_s)
    n = summary.delivered
    assert summary.failed == 0 and n == summary.sent, summary
    pipeline.until(pipeline.caught_up(live, SOURCE, n), timeout_s, "every record through PostgreSQL gold and silver")
    return n


def assert_exact_after(pipeline: Pipeline, n: int, restarts_before: float, label: str) -> None:
    """After the fault: the pipeline did not die, its query restarts are printed (``label``), and every
    layer equals the recompute of the ``n`` records."""
    assert not pipeline.failure, pipeline.failure
    count = restarts(f"pipeline_{SOURCE}") - restarts_before
    print(f"reliability {label}: {count:g} query restarts")
    assert_layers_exact(pipeline.settings, SOURCE, n)


#: outages this long (and longer) run with the default restart backoff (doubling up to 30 s), as a
#: deployment would: with the short backoff of the other tests (2-4 s), a query failing all along a
#: 300 s outage would be restarted 50-100 times. The supervisor leaves failures out of its budget
#: only while its probe sees a dependency down; the S3 test cuts its bucket's endpoint alone (the probe
#: sees MinIO answer), so there every failure counts, and 50-100 would exceed the budget
#: (``streaming.max_restarts`` 20 per 900 s); with 30 s, about a dozen
LONG_OUTAGE_S = 300


def outage_backoff(outage_s: float) -> dict[str, Any]:
    """The ``streaming`` overrides of a test with an outage of ``outage_s``: the default backoff when long."""
    return {"restart_backoff_max_s": 30.0} if outage_s >= LONG_OUTAGE_S else {}


#: pytest-timeout for a test with a long outage (the default is 600 s)
LONG_TIMEOUT = pytest.mark.timeout(1800)


def stream_settings(stack: Stack, make_settings: MakeSettings, tmp_path: Any, **overrides: Any) -> Settings:
    """:func:`~tests.streaming.test_pipeline.pipeline_settings` of a pipeline of one source (``SOURCE``),
    with ``overrides`` (``kafka=...``, ``postgres=...``), and the source's subjects registered."""
    settings = pipeline_settings(
        stack,
        make_settings,
        tmp_path,
        # No cap on a batch's records: a micro-batch takes 15-30 s on a loaded 2-core machine whatever its
        # size, so 1,000 per trigger would never catch up with 100 records/s.
        streaming={"trigger_s": 1.0, "restart_backoff_max_s": 4.0, **overrides.pop("streaming", {})},
        **overrides,
    )
    settings.topics.sources = (SOURCE,)
    # As `eventlake topics create` does: the pipeline refuses to start on subjects that do not exist.
    register_schemas(settings, endpoints(settings).registry_url)
    return settings


@contextmanager
def streaming(settings: Settings, live: Endpoints) -> Iterator[Pipeline]:
    """:func:`tests.streams.jobs_running`, as a :class:`Pipeline`. The block should end with
    ``assert not pipeline.failure``."""
    with jobs_running(settings, live) as failure:
        yield Pipeline(settings, failure)


def produce_once_running(spark: Any, pipeline: Pipeline, *, seed: int) -> Producing:
    """An endless producer (100 records/s) of the pipeline's one source, started once its query runs
    (Spark takes 30-90 s to start here: records produced before would only be a backlog), returned once
    the first reach silver."""
    settings = pipeline.settings
    (source,) = settings.topics.sources
    name = f"pipeline_{source}"
    pipeline.until(lambda: any(q.name == name for q in spark.streams.active), 240, f"query {name} to start")
    producing = start_producing(settings, endpoints(settings), source, None, rate=100, seed=seed)
    started = time.monotonic()
    pipeline.until(lambda: len(delta_rows(settings, "silver", source)) > 0, 240, "the first silver rows")
    print(f"\nfirst silver rows {time.monotonic() - started:.1f} s after the producer started")
    return producing
