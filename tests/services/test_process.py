from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventlake.errors import PortInUseError
from eventlake.net import choose_port, port_is_free
from eventlake.services.process import ProcessRef, spawn, terminate


def test_configured_busy_port_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(PortInUseError) as err:
            choose_port("kafka", "127.0.0.1", busy, None, "EVENTLAKE_KAFKA_PORT")
        assert f"127.0.0.1:{busy}" in str(err.value) and "EVENTLAKE_KAFKA_PORT=0" in str(err.value)
        # Unconfigured: the busy previous port is given up for a free one.
        chosen = choose_port("kafka", "127.0.0.1", 0, busy, "EVENTLAKE_KAFKA_PORT")
        assert chosen != busy and port_is_free("127.0.0.1", chosen)


def test_stale_and_reused_pids_are_not_ours() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = ProcessRef(proc.pid, 1.0)
    assert not dead.alive()
    me = ProcessRef.of(os.getpid())
    assert me.alive()
    assert not ProcessRef(me.pid, me.create_time - 100).alive(), "same pid, other start time: reused"


def test_spawn_and_terminate_process_tree(tmp_path: Path) -> None:
    script = (
        "import subprocess,sys,time; "
        "subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)"
    )
    ref = spawn([sys.executable, "-c", script], tmp_path / "out.log")
    assert ref.alive()
    proc = ref.process()
    assert proc is not None
    time.sleep(0.5)
    children = proc.children(recursive=True)
    assert children
    terminate(ref, timeout=5)
    assert not ref.alive()
    assert not any(c.is_running() and c.status() != "zombie" for c in children)
