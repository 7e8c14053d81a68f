"""The contract every managed component follows, and the state it leaves in EVENTLAKE_HOME.

A service is *external* when its endpoint is configured (``EVENTLAKE_KAFKA_BOOTSTRAP``,
``EVENTLAKE_POSTGRES_URL``, ...): eventlake then only health-checks it. Otherwise it is
*managed*: ``start`` spawns it bound to 127.0.0.1, waits until it answers, and records pid,
ports, endpoint and log path in ``<home>/run/<name>.json``. The record outlives ``stop`` (with
no pid) so that the next start reuses the same ports.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from eventlake.config import Settings
from eventlake.endpoints import Health
from eventlake.errors import ServiceError
from eventlake.net import port_is_free
from eventlake.observability.targets import refresh_targets
from eventlake.services.process import ProcessRef, spawn, tail, terminate, wait_until

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    """What a start left behind; JSON in ``<home>/run/<name>.json``."""

    name: str
    endpoint: str
    ports: dict[str, int]
    log: str
    host: str
    pid: int | None = None
    create_time: float | None = None
    started_at: float = field(default_factory=time.time)

    @property
    def process(self) -> ProcessRef | None:
        if self.pid is None or self.create_time is None:
            return None
        return ProcessRef(self.pid, self.create_time)


class Service(ABC):
    """A component of the local stack. Subclasses implement ``_launch`` and ``check``."""

    name: ClassVar[str]
    #: key of the endpoint in ``eventlake status --json`` ("bootstrap", "url", "uri")
    endpoint_key: ClassVar[str] = "url"
    #: the key under which ``status --json`` reports it (contract names)
    status_key: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- configuration -------------------------------------------------------------------
    def enabled(self) -> bool:
        """False for optional components that are switched off in config."""
        return True

    @abstractmethod
    def external_endpoint(self) -> str | None:
        """The configured endpoint of an external instance, or None if eventlake manages it."""

    @property
    def managed(self) -> bool:
        return self.external_endpoint() is None

    @property
    def dir(self) -> Path:
        return self.settings.home / self.name

    # -- state ---------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.settings.home / "run" / f"{self.name}.json"

    def load_state(self) -> ServiceState | None:
        try:
            return ServiceState(**json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as err:
            # A torn write from a killed CLI: forget it rather than refuse to start.
            log.warning("ignoring unreadable state file", extra={"file": str(self.state_file), "err": str(err)})
            return None

    def save_state(self, state: ServiceState) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        os.replace(tmp, self.state_file)
        refresh_targets(self.settings.home)  # Prometheus scrapes what runs now

    def previous_port(self, key: str) -> int | None:
        state = self.load_state()
        return state.ports.get(key) if state else None

    def running_process(self) -> ProcessRef | None:
        """Our process if it is alive; a stale pid (killed, or reused by another program) is None."""
        state = self.load_state()
        ref = state.process if state else None
        return ref if ref is not None and ref.alive() else None

    # -- lifecycle -----------------------------------------------------------------------
    def endpoint(self) -> str | None:
        external = self.external_endpoint()
        if external is not None:
            return external
        state = self.load_state()
        return state.endpoint if state else None

    def is_running(self) -> bool:
        return not self.managed or self.running_process() is not None

    def start(self) -> ServiceState:
        """Start if not running (idempotent); return the state. Cleans up after itself on failure."""
        if not self.managed:
            raise ServiceError(f"{self.name} is external ({self.external_endpoint()}); eventlake does not start it")
        current = self.load_state()
        if current is not None and current.process is not None and current.process.alive():
            return current
        self.dir.mkdir(parents=True, exist_ok=True)
        state = self._launch()
        self.save_state(state)
        log.info("service started", extra={"service": self.name, "endpoint": state.endpoint, "pid": state.pid})
        return state

    @abstractmethod
    def _launch(self) -> ServiceState:
        """Spawn the process and wait until it answers. On failure stop it and raise ServiceError."""

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the managed process (safe when not running). True if something was stopped."""
        state = self.load_state()
        if state is None or state.process is None:
            return False
        stopped = state.process.alive()
        if stopped:
            self._shutdown(state, timeout)
        for port in state.ports.values():
            if not wait_until(partial(port_is_free, state.host, port), timeout=10):
                log.warning("port still bound after stop", extra={"service": self.name, "port": port})
        state.pid = None
        state.create_time = None
        self.save_state(state)
        return stopped

    def _shutdown(self, state: ServiceState, timeout: float) -> None:
        """Default stop: SIGTERM the process tree, then SIGKILL. Override for a gentler protocol."""
        assert state.process is not None
        terminate(state.process, timeout)

    @abstractmethod
    def check(self) -> Health:
        """Does the component answer right now (managed or external)?"""

    def status(self) -> dict[str, Any]:
        """This component's entry in ``eventlake status --json``."""
        health = self.check() if (not self.managed or self.running_process()) else Health(False, "not running")
        state = self.load_state()
        ref = self.running_process()
        return {
            self.endpoint_key: self.display_endpoint(),
            "ok": health.ok,
            "detail": health.detail,
            "managed": self.managed,
            "pid": ref.pid if ref else None,
            "log": state.log if state and self.managed else None,
        }

    def spawn_http(
        self, module: str, *, host: str, port: int, env: dict[str, str], log_name: str, ready: Callable[[str], Health]
    ) -> ServiceState:
        """Start ``python -m <module> --host H --port P`` and wait until ``ready(url)`` is ok."""
        argv = [sys.executable, "-m", module, "--host", host, "--port", str(port)]
        return self.spawn_and_wait(argv, host=host, port=port, env=env, log_name=log_name, ready=ready)

    def spawn_and_wait(
        self,
        argv: list[str],
        *,
        host: str,
        port: int,
        env: dict[str, str],
        log_name: str,
        ready: Callable[[str], Health],
        timeout: float = 60.0,
        interval: float = 0.3,
    ) -> ServiceState:
        """Start ``argv`` serving HTTP at ``host:port`` and wait until ``ready(url)`` is ok; on failure
        stop it and raise with the last error line of its log."""
        out = self.dir / log_name
        ref = spawn(argv, out, env=env)
        url = f"http://{host}:{port}"
        if not wait_until(
            lambda: ready(url).ok, timeout=timeout, interval=interval, abort=lambda: None if ref.alive() else "exited"
        ):
            terminate(ref)
            reason = next((ln for ln in reversed(tail(out)) if "rror" in ln), "timed out")
            raise ServiceError(f"{self.name} failed to start: {reason.strip()[:300]}", f"see {out}")
        return ServiceState(
            name=self.name,
            endpoint=url,
            ports={"http": port},
            log=str(out),
            host=host,
            pid=ref.pid,
            create_time=ref.create_time,
        )

    def display_endpoint(self) -> str | None:
        """The endpoint as shown to people (credentials masked)."""
        return self.endpoint()
