"""The MinIO binary the tests run, built by ``make setup`` in the background (``deploy/tools.sh``).

``make setup`` does not wait for the build (~3 min on 2 cores): the tests that need MinIO do, here,
by taking the build's lock. A failed or never-started build fails them with the reason and the
end of the build log; it never skips them.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".eventlake" / "tools"
MINIO_BIN = TOOLS / "bin" / "minio"
#: longest wait for a running build (it takes ~3 min alone on 2 cores, longer under load)
WAIT_S = 20 * 60.0


def _log_tail(log: Path, lines: int = 8) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({log} does not exist)"


def wait_for_minio(tools: Path = TOOLS, timeout: float = WAIT_S, notify: Callable[[str], None] = print) -> Path:
    """The built binary, once a running build has finished; ``pytest.fail`` if the build failed or none ran.

    ``tools`` is ``.eventlake/tools`` (``deploy/tools.sh`` keeps the same names)."""
    lock_file, status, log, binary = (
        tools / ".minio.lock",
        tools / ".minio-status",
        tools / "minio-build.log",
        tools / "bin" / "minio",
    )
    tools.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    waiting = False
    with open(lock_file, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    waiting = True
                    notify(f"waiting for the MinIO build that `make setup` started (log {log})")
                if time.monotonic() > deadline:
                    pytest.fail(f"the MinIO build is still running after {timeout:.0f} s; log {log}:\n{_log_tail(log)}")
                time.sleep(1)
        fcntl.flock(lock, fcntl.LOCK_UN)
    # A failed build fails the tests even if an older binary is still there.
    code = status.read_text().strip() if status.is_file() else ""
    if code not in ("", "0"):
        pytest.fail(f"the MinIO build failed (exit {code}); log {log}:\n{_log_tail(log)}")
    if os.access(binary, os.X_OK):
        return binary
    pytest.fail(f"MinIO is not built ({binary} is missing): run `make setup`, or `make minio` to build it now")
