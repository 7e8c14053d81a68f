"""The local Spark JVM yields the CPU: every thread of a process gets the nice value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eventlake.streaming.session import lower_priority

THREADS = """
import threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
print("ready", flush=True)
time.sleep(30)
"""


def _nice(pid: int) -> list[int]:
    return [os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()]


def test_every_thread_is_lowered_and_none_is_raised() -> None:
    proc = subprocess.Popen([sys.executable, "-c", THREADS], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert len(_nice(proc.pid)) == 4
        assert lower_priority(proc.pid, 7) == 4
        assert set(_nice(proc.pid)) == {7}
        assert lower_priority(proc.pid, 3) == 0, "a lower value never raises priority"
        assert set(_nice(proc.pid)) == {7}
    finally:
        proc.kill()
        proc.wait()
    assert lower_priority(None, 10) == 0
