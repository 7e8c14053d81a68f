"""Processes and ports: spawn detached, recognise our own pids, stop for sure."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from eventlake.errors import PortInUseError

log = logging.getLogger(__name__)


def free_port(host: str) -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True if ``host:port`` can be bound (SO_REUSEADDR: TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def choose_port(component: str, host: str, configured: int, previous: int | None, env_var: str) -> int:
    """Pick the port for a component.

    A configured port must be free (else :class:`PortInUseError`); otherwise the port used last
    time is kept when it is still free, so clients and checkpoints keep working across restarts.
    """
    if configured:
        if not port_is_free(host, configured):
            raise PortInUseError(
                f"{component}: port {host}:{configured} is already in use by another process",
                f"stop that process, or set {env_var}=0 to let eventlake pick a free port",
            )
        return configured
    if previous and port_is_free(host, previous):
        return previous
    return free_port(host)


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
