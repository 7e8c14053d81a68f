"""The serving path in its own process beside the Spark driver (its own interpreter, so its
per-record Python work never waits for the driver's or the demo producer's GIL)."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.errors import EventlakeError
from eventlake.kafka.security import client_security
from eventlake.logs import configure_logging
from eventlake.observability.server import kafka_check, postgres_check, serve_health
from eventlake.quality.rules import load_quality
from eventlake.serving.engine import ServingPath

log = logging.getLogger(__name__)


class ServingFailedError(EventlakeError):
    """The serving process ended with an error (its message says which)."""


def run_until_idle(settings: Settings, live: Endpoints) -> None:
    """Apply everything the raw topics hold now, write it, return (in this process)."""
    ServingPath(settings, live, load_quality(settings)).run(lambda: False, until_idle=True)


def _serve(
    settings: Settings,
    live: Endpoints,
    stop: mp.synchronize.Event,
    errors: Any,
    log_file: Path | None,
    *,
    until_idle: bool,
) -> None:
    # Ctrl-C reaches the whole process group: the parent stops us through ``stop`` (we write what we
    # hold, then exit); a SIGTERM sent to this process alone does the same.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    configure_logging(settings.log_level, log_file)
    checks = {
        "kafka": kafka_check(live.kafka_bootstrap, client_security(settings)),
        "postgres": postgres_check(live.postgres_url),
    }
    # Until idle it is a batch run, like ``--until-idle`` itself: no endpoint to scrape.
    server = None if until_idle else serve_health(settings, "serving", checks, settings.metrics.serving_port)
    try:
        ServingPath(settings, live, load_quality(settings)).run(stop.is_set, until_idle=until_idle)
    except BaseException as err:
        log.exception("serving path failed")
        errors.put(f"{type(err).__name__}: {err}"[:2000])  # for the parent's error message
        raise
    finally:
        if server is not None:
            server.stop()


class ServingProcess:
    """Start with :meth:`start`; :meth:`stop` asks it to write what it holds and exit. ``until_idle``:
    it applies what the raw topics hold now and exits (:meth:`finish` waits for that), beside the
    Spark passes of ``--until-idle`` instead of before them."""

    def __init__(self, settings: Settings, live: Endpoints, *, until_idle: bool = False) -> None:
        ctx = mp.get_context("spawn")  # no fork: the parent runs JVM gateway and sink threads
        self._stop = ctx.Event()
        self._stopping = False  # set by this side: an exit after it is no failure
        self._errors = ctx.SimpleQueue()
        # Log where the parent's eventlake logging goes (its file, under EVENTLAKE_HOME, or stderr).
        handler = next((h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)), None)
        log_file = Path(handler.baseFilename) if handler is not None and handler.baseFilename != os.devnull else None
        self.process = ctx.Process(
            target=_serve,
            args=(settings, live, self._stop, self._errors, log_file),
            kwargs={"until_idle": until_idle},
            name="eventlake-serving",
            daemon=True,
        )
        self._until_idle = until_idle

    def start(self) -> ServingProcess:
        self.process.start()
        return self

    def failure(self) -> str | None:
        """Why the process ended, if it ended on its own (None while it runs)."""
        if self.process.is_alive() or self._stopping or (self._until_idle and self.process.exitcode == 0):
            return None
        why = self._errors.get() if not self._errors.empty() else "no error reported (killed?)"
        return f"serving path exited with code {self.process.exitcode}: {why}"

    def finish(self, poll: Callable[[], None] | None = None) -> None:
        """Wait for an ``until_idle`` process to end (calling ``poll`` about once a second); raises
        if it failed."""
        while self.process.is_alive():
            self.process.join(1)
            if poll is not None:
                poll()
        if (why := self.failure()) is not None:
            raise ServingFailedError(why)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping = True
        self._stop.set()
        self.process.join(timeout_s)
        if self.process.is_alive():
            log.warning("serving path did not stop in time; terminating it", extra={"timeout_s": timeout_s})
            self.process.terminate()
            self.process.join(5)
