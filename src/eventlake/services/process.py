"""Processes and ports: spawn detached, recognise our own pids, stop for sure."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessRef:
    """A pid plus its start time: a pid reused by an unrelated process is not mistaken for ours."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        return cls(pid, psutil.Process(pid).create_time())

    def process(self) -> psutil.Process | None:
        """The live process, or None if it exited, is a zombie, or the pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.01:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def alive(self) -> bool:
        return self.process() is not None


def spawn(
    argv: Sequence[str],
    log_file: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> ProcessRef:
    """Start ``argv`` in its own session (survives the CLI), output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            user=user,
            start_new_session=True,
            close_fds=True,
        )
    log.info("spawned", extra={"pid": proc.pid, "argv0": argv[0], "log": str(log_file)})
    return ProcessRef.of(proc.pid)


def terminate(ref: ProcessRef, timeout: float = 20.0) -> None:
    """SIGTERM the process and its children, wait, then SIGKILL whatever is left."""
    proc = ref.process()
    if proc is None:
        return
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        family = [proc]
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGTERM)
    _gone, alive = psutil.wait_procs(family, timeout=timeout)
    for p in alive:
        log.warning("process ignored SIGTERM; killing", extra={"pid": p.pid})
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    # Reap if it is our own child (tests start services in-process).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(ref.pid, os.WNOHANG)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.25,
    abort: Callable[[], str | None] | None = None,
) -> bool:
    """Poll ``predicate`` until true or ``timeout``. ``abort`` returning a reason stops early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if abort is not None and abort() is not None:
            return False
        time.sleep(interval)
    return predicate()


def tail(path: Path, lines: int = 200) -> list[str]:
    """Last lines of a log file (empty if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            return f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []
