"""The pipeline on a Spark standalone cluster (a master and 2 workers on loopback, 1 core each), one
worker killed -9 mid-stream with its executor, as a lost machine.

The streaming process (``eventlake stream`` with ``EVENTLAKE_STREAMING_MASTER=spark://...``) runs in a
subprocess: the test session's own SparkSession (``local[2]``) would be returned by ``getOrCreate`` in
this one. The lake is a ``file://`` directory, which every executor on this machine reaches. What the
lost executor held (its shuffle files, the batch's and the open-window state's checkpointed blocks)
is gone: a batch that needs it fails, the supervisor restarts the query from its checkpoint, and
every layer must be exact afterwards. The recovery time is printed for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventlake.jvm import find_java
from eventlake.services import Stack, endpoints
from eventlake.services.process import wait_until
from tests import streams
from tests.chaos.streaming import SOURCE, Pipeline, start_producing, stream_settings
from tests.conftest import MakeSettings
from tests.sparkcluster import SparkCluster
from tests.streaming.exact import assert_layers_exact
from tests.streaming.test_pipeline import delta_rows

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]
EVENTLAKE = str(Path(sys.executable).parent / "eventlake")
EXECUTOR_MEMORY_MB = 768  # of the workers' 1g each
PRODUCE_AFTER_KILL_S = 20.0


@pytest.fixture
def cluster(stack: Stack, tmp_path: Path) -> Iterator[SparkCluster]:
    spark_cluster = SparkCluster(tmp_path / "spark", find_java(stack.settings).path, workers=2, cores=1, memory="1g")
    try:
        yield spark_cluster.start()
    finally:
        spark_cluster.stop()


def _alive(job: subprocess.Popen[bytes], log: Path, check: Callable[[], bool]) -> Callable[[], bool]:
    """``check``, failing the wait at once (not as "not yet") if the streaming process has exited."""

    def checked() -> bool:
        if job.poll() is not None:
            raise RuntimeError(f"eventlake stream exited {job.returncode}:\n{log.read_text()[-4000:]}")
        return check()

    return checked


@pytest.mark.timeout(1500)
def test_a_worker_killed_mid_stream_on_a_standalone_cluster_loses_and_duplicates_nothing(
    stack: Stack, make_settings: MakeSettings, tmp_path: Path, cluster: SparkCluster
) -> None:
    settings = stream_settings(stack, make_settings, tmp_path)
    live = endpoints(settings)
    env = streams.stream_env(
        settings,
        live,
        [SOURCE],
        STREAMING_TRIGGER_S="1",
        STREAMING_RESTART_BACKOFF_MAX_S="4",
        STREAMING_MASTER=cluster.url,
        STREAMING_SPARK_CONF=json.dumps({"spark.executor.memory": f"{EXECUTOR_MEMORY_MB}m"}),
    )
    log = tmp_path / "stream.log"
    pipeline = Pipeline(settings)
    with open(log, "wb") as out:
        job = subprocess.Popen([EVENTLAKE, "stream"], env=env, stdout=out, stderr=out, start_new_session=True)
    producing = None
    try:
        # The application takes a core of each worker: 2 executors, of the memory it asked for.
        started = time.monotonic()
        pipeline.until(
            _alive(job, log, lambda: len(cluster.apps()) == 1 and cluster.apps()[0]["cores"] == 2), 300, "2 executors"
        )
        (app,) = cluster.apps()
        assert app["memoryperexecutor"] == EXECUTOR_MEMORY_MB, app  # streaming.spark_conf reached Spark
        print(f"\napplication {app['id']} with 2 executors {time.monotonic() - started:.1f} s after the start")
        producing = start_producing(settings, live, SOURCE, None, rate=100, seed=61)
        pipeline.until(
            _alive(job, log, lambda: len(delta_rows(settings, "silver", SOURCE)) > 0), 300, "the first silver rows"
        )
        assert all(w["coresused"] == 1 for w in cluster.alive_workers()), cluster.alive_workers()
        assert cluster.executors(0), "worker 0 runs an executor of the application"

        killed_pids = cluster.kill_worker(0)
        killed = time.monotonic()
        assert wait_until(lambda: len(cluster.alive_workers()) == 1 and cluster.apps()[0]["cores"] == 1, 60), (
            cluster.state()
        )
        print(f"worker 0 and its executor killed -9 (pids {killed_pids}); the master saw it within 60 s")
        time.sleep(PRODUCE_AFTER_KILL_S)
        summary = producing.finish(180)
        producing = None
        n = summary.delivered
        assert summary.failed == 0 and n == summary.sent, summary
        produced = time.monotonic() - killed
        pipeline.until(_alive(job, log, pipeline.caught_up(live, SOURCE, n)), 600, "every record through")
        caught_up = time.monotonic() - killed
        print(
            f"reliability spark_worker_kill -9 (1 of 2 workers, its executor): caught up {caught_up:.1f} s after"
            f" the kill ({caught_up - produced:.1f} s after the last of {n} records)"
        )
        job.send_signal(signal.SIGTERM)  # stops between micro-batches, or interrupts one after 10 s
        assert job.wait(180) == 0, log.read_text()[-4000:]
    finally:
        if producing is not None:
            producing.stop.set()  # the test failed before it stopped the producer
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
    # As a process manager would start it again: a batch the stop interrupted is replayed, and the end of
    # --until-idle writes every open window to Delta gold (an interrupted batch's state is gone, so the
    # stop could not: docs/reliability.md). On the one worker left.
    with open(log, "ab") as out:
        final = subprocess.run(
            [EVENTLAKE, "stream", "--until-idle"], env=env, stdout=out, stderr=out, timeout=900, check=False
        )
    assert final.returncode == 0, log.read_text()[-4000:]
    text = log.read_text()
    print(
        f"reliability spark_worker_kill: {text.count('pipeline component restarted')} restarts"
        f" ({text.count('pipeline component failed')} failures)"
    )
    assert "the pipeline cannot go on" not in text
    assert_layers_exact(settings, SOURCE, n)
