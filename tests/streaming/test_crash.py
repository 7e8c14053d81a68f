"""Exactly-once proof: kill -9 the streaming job mid-stream several times while producing goes on,
restart it each time, then compare every gold row with an independent recompute."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from eventlake.services import Stack, endpoints
from tests import streams
from tests.conftest import MakeSettings
from tests.streaming.exact import assert_layers_exact
from tests.streaming.test_pipeline import START, pipeline_settings
from tests.streams import send

pytestmark = pytest.mark.e2e
EVENTLAKE = str(Path(sys.executable).parent / "eventlake")


def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any
) -> None:
    settings = pipeline_settings(stack, make_settings, tmp_path)
    live = endpoints(settings)
    source = "transactions"
    env = streams.stream_env(settings, live, [source], STREAMING_TRIGGER_S="1", STREAMING_MAX_OFFSETS_PER_TRIGGER="700")
    n = 9000
    producer = threading.Thread(
        target=send,
        args=(settings, live, [source], n),
        kwargs={"rate": 90, "seed": 21, "start_ms": START, "faults": 0.03},
    )
    producer.start()
    rng = random.Random(5)
    kills = 0
    log = open(tmp_path / "stream.log", "w")  # noqa: SIM115 - shared by the runs below
    for _ in range(3):
        job = subprocess.Popen([EVENTLAKE, "stream"], env=env, stdout=log, stderr=log, start_new_session=True)
        time.sleep(rng.uniform(30, 50))
        assert job.poll() is None, (tmp_path / "stream.log").read_text()[-3000:]
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        kills += 1
    producer.join(timeout=300)
    final = subprocess.run(
        [EVENTLAKE, "stream", "--until-idle"], env=env, stdout=log, stderr=log, timeout=900, check=False
    )
    log.close()
    assert final.returncode == 0, (tmp_path / "stream.log").read_text()[-3000:]
    assert kills == 3

    assert_layers_exact(settings, source, n)
