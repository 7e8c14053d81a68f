"""The serving path in its own process beside the Spark driver (its own interpreter, so its
per-record Python work never waits for the driver's or the demo producer's GIL)."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any

from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.logs import configure_logging
from eventlake.observability.server import kafka_check, postgres_check, serve_health
from eventlake.quality.rules import load_quality
from eventlake.serving.engine import ServingPath

log = logging.getLogger(__name__)


def run_until_idle(settings: Settings, live: Endpoints) -> None:
    """Apply everything the raw topics hold now, write it, return (in this process)."""
    ServingPath(settings, live, load_quality(settings)).run(lambda: False, until_idle=True)


def _serve(settings: Settings, live: Endpoints, stop: mp.synchronize.Event, errors: Any, log_file: Path | None) -> None:
    # Ctrl-C reaches the whole process group: the parent stops us through ``stop`` (we write what we
    # hold, then exit); a SIGTERM sent to this process alone does the same.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    configure_logging(settings.log_level, log_file)
    checks = {"kafka": kafka_check(live.kafka_bootstrap), "postgres": postgres_check(live.postgres_url)}
    server = serve_health(settings, "serving", checks, settings.metrics.serving_port)
    try:
        ServingPath(settings, live, load_quality(settings)).run(stop.is_set)
    except BaseException as err:
        log.exception("serving path failed")
        errors.put(f"{type(err).__name__}: {err}"[:2000])  # for the parent's error message
        raise
    finally:
        server.stop()


class ServingProcess:
    """Start with :meth:`start`; :meth:`stop` asks it to write what it holds and exit."""

    def __init__(self, settings: Settings, live: Endpoints) -> None:
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
            name="eventlake-serving",
            daemon=True,
        )

    def start(self) -> ServingProcess:
        self.process.start()
        return self

    def failure(self) -> str | None:
        """Why the process ended, if it ended on its own (None while it runs)."""
        if self.process.is_alive() or self._stopping:
            return None
        why = self._errors.get() if not self._errors.empty() else "no error reported (killed?)"
        return f"serving path exited with code {self.process.exitcode}: {why}"

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping = True
        self._stop.set()
        self.process.join(timeout_s)
        if self.process.is_alive():
            log.warning("serving path did not stop in time; terminating it", extra={"timeout_s": timeout_s})
            self.process.terminate()
            self.process.join(5)
