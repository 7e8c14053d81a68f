"""``eventlake checkpoints reset``: the query goes on from where its last committed batch ended, on a
new checkpoint, and every layer stays exact (before, a new checkpoint re-read the topic from its start,
and its batch ids, starting at 0 again, were taken for replays: their writes were skipped)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from eventlake.services import Stack, endpoints
from eventlake.streaming.jobs import JOBS, start_jobs
from eventlake.streaming.paths import checkpoint
from tests import streams
from tests.conftest import MakeSettings
from tests.streaming.exact import assert_layers_exact
from tests.streaming.test_pipeline import START, pipeline_settings

pytestmark = pytest.mark.e2e
EVENTLAKE = str(Path(sys.executable).parent / "eventlake")
SOURCE = "transactions"


def test_a_reset_checkpoint_goes_on_where_it_was_and_every_layer_stays_exact(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any
) -> None:
    settings = pipeline_settings(stack, make_settings, tmp_path, streaming={"max_offsets_per_trigger": 600})
    settings.topics.sources = (SOURCE,)
    live = endpoints(settings)

    def send(n: int, seed: int, start_ms: int) -> None:
        summary = streams.send(settings, live, [SOURCE], n, seed=seed, start_ms=start_ms, faults=0.05)
        assert summary.delivered == n

    send(1500, 11, START)
    start_jobs(spark, settings, live, list(JOBS), until_idle=True)
    env = streams.stream_env(settings, live, [SOURCE])
    reset = [EVENTLAKE, "checkpoints", "reset", "--source", SOURCE]
    refused = subprocess.run(reset, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1 and refused.stderr.strip().startswith("error: a reset deletes the checkpoint")
    done = subprocess.run([*reset, "--yes"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{SOURCE}: checkpoint reset; the next run starts at {{" in done.stderr, done.stderr
    location = checkpoint(settings, f"pipeline_{SOURCE}")
    assert not Path(location).exists()

    send(1500, 12, START + 60_000)
    start_jobs(spark, settings, live, list(JOBS), until_idle=True)
    assert Path(location, "commits").is_dir(), "a new checkpoint"
    assert_layers_exact(settings, SOURCE, 3000)  # bronze: each record once, so nothing was re-read
    with psycopg.connect(live.postgres_url) as conn:
        runs = conn.execute(
            "SELECT base FROM eventlake_stream_runs WHERE query = %s ORDER BY base", (f"pipeline_{SOURCE}",)
        ).fetchall()
        first_run_keys = conn.execute(
            "SELECT max(batch_id) FROM eventlake_stream_batches WHERE query = %s AND batch_id < %s",
            (f"pipeline_{SOURCE}", runs[-1][0]),
        ).fetchone()
        pending = conn.execute("SELECT count(*) FROM eventlake_stream_resets").fetchone()
    assert len(runs) == 2 and runs[0][0] == 0
    assert first_run_keys is not None and runs[1][0] == first_run_keys[0] + 1, "the new run's keys follow the old"
    assert pending is not None and pending[0] == 1, "kept until a later start finds the new checkpoint under way"
