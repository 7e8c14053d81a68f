"""A stop that interrupts a running micro-batch (``Jobs.stop`` gives a batch 10 s, then stops anyway, so
that Ctrl-C takes seconds). The interrupted batch fails and takes the open-window state with it; it is
replayed on the next start. Before the fix the stop then wrote no open window to Delta gold, which
lacked every window still open at the stop (PostgreSQL gold had them)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.services import Stack, endpoints
from eventlake.services.process import wait_until
from eventlake.streaming.jobs import JOBS, _stop_between_batches, start_jobs
from tests import streams
from tests.conftest import MakeSettings
from tests.streaming import recompute
from tests.streaming.test_pipeline import START, assert_gold_matches, delta_rows, pipeline_settings

pytestmark = pytest.mark.e2e
SOURCE = "transactions"
ATTEMPTS = 3


def test_a_stop_that_interrupts_a_batch_still_leaves_every_window_of_silver_in_delta_gold(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any
) -> None:
    # Small batches, so that many run back to back; PostgreSQL gold from the pass (no serving process).
    settings = pipeline_settings(
        stack, make_settings, tmp_path, streaming={"max_offsets_per_trigger": 250}, serving={"enabled": False}
    )
    settings.topics.sources = (SOURCE,)
    live = endpoints(settings)
    summary = streams.send(settings, live, [SOURCE], 8000, seed=23, start_ms=START, faults=0.0)
    assert summary.delivered == 8000

    interrupted = False
    for _ in range(ATTEMPTS):  # a stop can land between two batches: then start again and retry
        if interrupted := _stop_inside_a_batch(spark, settings, live):
            break
    assert interrupted, f"none of {ATTEMPTS} stops landed inside a batch"

    silver = delta_rows(settings, "silver", SOURCE)
    assert 0 < len(silver) < 8000, "stopped mid-stream"
    assert_gold_matches(settings, SOURCE, recompute.gold(SOURCE, silver), postgres=False)
    sliding = recompute.sliding_transactions(silver)
    assert_gold_matches(settings, SOURCE, sliding, table="gold_transactions_5m_sliding", postgres=False)


def _stop_inside_a_batch(spark: Any, settings: Settings, live: Endpoints) -> bool:
    """Start the pipeline, stop it inside a micro-batch, then as ``eventlake stream`` stops (flush):
    whether the stop interrupted a batch (the batch failed and dropped the state)."""
    jobs = start_jobs(spark, settings, live, list(JOBS), until_idle=False)
    (query,), (process,) = list(jobs), jobs.passes
    try:
        assert wait_until(lambda: query.lastProgress is not None, 300), "a first batch completed"
        running = lambda: bool(query.status.get("isTriggerActive")) and process.windows.loaded  # noqa: E731
        assert wait_until(running, 120, interval=0.02)
        time.sleep(0.3)  # into the batch: past planning, inside its writes
        _stop_between_batches([query], timeout_s=0)
        return not process.windows.loaded
    finally:
        jobs.stop()
