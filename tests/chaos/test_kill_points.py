"""kill -9 at each commit point of a micro-batch (``eventlake.killpoints``): the process kills itself
right after the named write of its second batch that makes it, as a crash there would; ``eventlake stream --until-idle``
started again replays the batch, and every layer equals the recompute from the raw topic. ``flush``
kills the run at its end instead (the graceful stop's own writes; nothing is replayed there).
``test_crash.py`` kills at random times from outside; this puts the kill where each commit ends."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventlake.killpoints import VARIABLE
from eventlake.services import Stack, endpoints
from tests import streams
from tests.conftest import MakeSettings
from tests.streaming.exact import assert_layers_exact
from tests.streaming.test_pipeline import START, pipeline_settings

pytestmark = pytest.mark.e2e
EVENTLAKE = str(Path(sys.executable).parent / "eventlake")
SOURCE = "transactions"
N = 3000
#: the second half of the records is dated 10 minutes after the first: the first half's windows
#: close (Delta gold MERGEs) in the batches that bring the second
LATER_MS = 600_000
#: where each write of a batch has committed ({dlq}: the source's dead-letter topic)
POINTS = [
    pytest.param("begun", marks=pytest.mark.chaos),
    pytest.param("delta:bronze/transactions", marks=pytest.mark.chaos),
    "delta:silver/transactions",  # silver committed, gold and DQ not
    "hand_off",  # the serving path's positions moved, PostgreSQL gold not written (serving.handoff)
    pytest.param("delta:quarantine/transactions", marks=pytest.mark.chaos),
    pytest.param("kafka:{dlq}", marks=pytest.mark.chaos),
    pytest.param("delta:gold/gold_transactions_1m", marks=pytest.mark.chaos),
    pytest.param("watermarks", marks=pytest.mark.chaos),
    pytest.param("quality", marks=pytest.mark.chaos),
    pytest.param("done", marks=pytest.mark.chaos),
    "flush",  # the end of --until-idle: its Delta DQ export recorded, not appended (repair_quality)
]


@pytest.mark.parametrize("point", POINTS)
def test_kill_9_right_after_a_commit_loses_and_duplicates_nothing(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any, point: str
) -> None:
    settings = pipeline_settings(stack, make_settings, tmp_path)
    live = endpoints(settings)
    for seed, start_ms in ((41, START), (42, START + LATER_MS)):
        summary = streams.send(settings, live, [SOURCE], N // 2, seed=seed, start_ms=start_ms, faults=0.05)
        assert summary.delivered == N // 2
    env = streams.stream_env(settings, live, [SOURCE], STREAMING_MAX_OFFSETS_PER_TRIGGER="600")
    log = tmp_path / "stream.log"
    kill_at = f"{point.format(dlq=settings.topics.dlq(SOURCE))}@{1 if point == 'flush' else 2}"  # one flush per run
    with open(log, "ab") as out:
        killed = subprocess.run(
            [EVENTLAKE, "stream", "--until-idle"],
            env={**env, VARIABLE: kill_at},
            stdout=out,
            stderr=out,
            timeout=600,
            check=False,
        )
    assert killed.returncode == -signal.SIGKILL, f"never reached {kill_at}: {log.read_text()[-3000:]}"
    with open(log, "ab") as out:
        final = subprocess.run(
            [EVENTLAKE, "stream", "--until-idle"], env=env, stdout=out, stderr=out, timeout=600, check=False
        )
    assert final.returncode == 0, log.read_text()[-4000:]
    assert_layers_exact(settings, SOURCE, N)
