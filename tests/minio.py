"""The MinIO binary the tests run, built by ``make setup`` in the background (``deploy/tools.sh``).

``make setup`` does not wait for the build (~3 min on 2 cores): the tests that need MinIO do, here,
by taking the build's lock. A failed or never-started build fails them with the reason and the
end of the build log; it never skips them.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".eventlake" / "tools"
MINIO_BIN = TOOLS / "bin" / "minio"
LOCK = TOOLS / ".minio.lock"
STATUS = TOOLS / ".minio-status"
LOG = TOOLS / "minio-build.log"
#: longest wait for a running build (it takes ~3 min alone on 2 cores, longer under load)
WAIT_S = 20 * 60.0


def _log_tail(lines: int = 8) -> str:
    try:
        return "\n".join(LOG.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({LOG} does not exist)"


def wait_for_minio(timeout: float = WAIT_S) -> Path:
    """The built binary, once a running build has finished; ``pytest.fail`` if there is none."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(LOCK, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the MinIO build is still running after {timeout:.0f} s; log {LOG}:\n{_log_tail()}")
                time.sleep(1)
        fcntl.flock(lock, fcntl.LOCK_UN)
    if os.access(MINIO_BIN, os.X_OK):
        return MINIO_BIN
    if STATUS.is_file() and STATUS.read_text().strip() not in ("", "0"):
        pytest.fail(f"the MinIO build failed (exit {STATUS.read_text().strip()}); log {LOG}:\n{_log_tail()}")
    pytest.fail(f"MinIO is not built ({MINIO_BIN} is missing): run `make setup`, or `make minio` to build it now")
