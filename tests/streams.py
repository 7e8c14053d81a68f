"""What the streaming suites share: seeded records into the raw topics, and the pipeline (``run_jobs``)
running in a thread while a test looks at it."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.sources.produce import ProduceSummary, produce


def stream_env(settings: Settings, live: Endpoints, sources: Sequence[str], **extra: str) -> dict[str, str]:
    """The environment of an ``eventlake`` subprocess working on ``settings``' home, lake, checkpoints,
    topics and database, for ``sources``; ``extra``: more settings by variable name without the
    ``EVENTLAKE_`` prefix (``STREAMING_TRIGGER_S="1"``)."""
    return {
        **os.environ,
        "EVENTLAKE_HOME": str(settings.home),
        "EVENTLAKE_S3_LOCAL": "true",
        "EVENTLAKE_POSTGRES_URL": live.postgres_url,
        "EVENTLAKE_LAKE_URI": settings.lake_uri,
        "EVENTLAKE_STREAMING_CHECKPOINT_DIR": str(settings.streaming.checkpoint_dir),
        "EVENTLAKE_TOPICS_RAW_PREFIX": settings.topics.raw_prefix,
        "EVENTLAKE_TOPICS_DLQ_PREFIX": settings.topics.dlq_prefix,
        "EVENTLAKE_TOPICS_ALERTS": settings.topics.alerts,
        "EVENTLAKE_TOPICS_SOURCES": json.dumps(list(sources)),
        **{f"EVENTLAKE_{name}": value for name, value in extra.items()},
    }


def send(
    settings: Settings,
    live: Endpoints,
    sources: Sequence[str],
    count: int | None,
    *,
    seed: int,
    start_ms: int,
    faults: float = 0.0,
    rate: float | None = None,
    stop: threading.Event | None = None,
) -> ProduceSummary:
    """``produce`` into ``live``'s Kafka with its registry: ``count`` seeded records per source (None:
    until ``stop``), on the simulated clock from ``start_ms``, a ``faults`` fraction labelled bad."""
    return produce(
        settings,
        bootstrap=live.kafka_bootstrap,
        registry_url=live.registry_url,
        sources=list(sources),
        count=count,
        rate=rate,
        seed=seed,
        start_ms=start_ms,
        faults=faults,
        stop=stop,
    )


@contextmanager
def jobs_running(settings: Settings, live: Endpoints) -> Iterator[list[BaseException]]:
    """``run_jobs`` (every layer, not until idle) in a thread until the block ends; then stopped
    between micro-batches (waiting up to 120 s). Yields the list that gets what ended it early: the
    block should end with ``assert not failure``."""
    from eventlake.streaming.jobs import JOBS, run_jobs  # noqa: PLC0415 - pyspark is slow to import

    stop = threading.Event()
    failure: list[BaseException] = []

    def stream() -> None:
        try:
            run_jobs(settings, live, list(JOBS), until_idle=False, stop=stop)
        except BaseException as err:  # reported by the main thread
            failure.append(err)

    runner = threading.Thread(target=stream, name="test-pipeline", daemon=True)
    runner.start()
    try:
        yield failure
    finally:
        stop.set()
        runner.join(timeout=120)
