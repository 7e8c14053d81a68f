"""Restart what failed, with backoff, within a budget: a query from its checkpoint, the serving path
from its stored positions.

A micro-batch that fails (PostgreSQL or the registry gone for longer than the batch's own retries,
a broker restart, a bug) fails its query; Spark does not retry. Exactly-once makes a restart safe:
the failed batch is replayed with the same batch id and its sinks keep what its first run wrote.
So the pipeline restarts the component after a backoff (1 s, doubling, at most ``max_backoff_s``)
and counts it (``eventlake_pipeline_restarts_total``; the Prometheus rule
``EventlakePipelineRestarting`` alerts on it).

The budget tells an outage from a crash loop. A failure while a server the pipeline depends on does
not answer (the caller probes them: Kafka, PostgreSQL, the registry, S3) is an outage: the component
is restarted every ``max_backoff_s`` for as long as it lasts, and the failure is not counted. Any
other failure counts: more than ``max_restarts`` of one component within ``window_s``, with every
dependency answering, is a fault no restart cures (a bug, bad config): the pipeline stops with the
last error. Counting an outage's failures too would stop the pipeline about 8 minutes into an
outage (20 per 900 s, a failed restart every 30 s: arithmetic), however healthy it would be after;
with a budget of 2, it did stop in a 20 s PostgreSQL outage (``tests/chaos/test_outages.py``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eventlake.observability.metrics import PIPELINE_RESTARTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 600.0
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    restarts: int = 0
    outage_failures: int = 0  # failures during an outage: not in the budget
    last_error: str = ""
    due: float | None = None  # when the pending restart may run


class Supervisor:
    """Book-keeping of failures and restarts per component (a query name, ``serving``)."""

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy, self.clock = policy, clock
        self._records: dict[str, _Record] = {}

    def failed(self, component: str, error: str, down: Sequence[str] = ()) -> str | None:
        """Note a failure; None if a restart is scheduled, else why the pipeline must stop.
        Called once per failure (a component already waiting for its restart is not counted again).
        ``down``: the dependencies that did not answer just now; any makes this an outage's failure."""
        rec = self._records.setdefault(component, _Record())
        if rec.due is not None:
            return None
        now = self.clock()
        rec.last_error = error.splitlines()[0][:500] if error else "unknown error"
        if down:
            rec.outage_failures += 1
            rec.due = now + self.policy.max_backoff_s
            log.error(
                "pipeline component failed during an outage; restarting it when it ends",
                extra={
                    "component": component,
                    "in_s": self.policy.max_backoff_s,
                    "down": list(down),
                    "error": error[:2000],
                },
            )
            return None
        while rec.failures and now - rec.failures[0] > self.policy.window_s:
            rec.failures.popleft()
        rec.failures.append(now)
        if len(rec.failures) > self.policy.max_restarts:
            return (
                f"{component} failed {len(rec.failures)} times within {self.policy.window_s:g} s"
                f" (restart budget {self.policy.max_restarts}): {error}"
            )
        backoff = min(self.policy.max_backoff_s, self.policy.backoff_s * 2 ** (len(rec.failures) - 1))
        rec.due = now + backoff
        log.error(
            "pipeline component failed; restarting it",
            extra={"component": component, "in_s": backoff, "failures": len(rec.failures), "error": error[:2000]},
        )
        return None

    def pending(self, component: str) -> bool:
        """A restart is scheduled (whether or not it is due yet)."""
        rec = self._records.get(component)
        return rec is not None and rec.due is not None

    def due(self, component: str) -> bool:
        rec = self._records.get(component)
        return rec is not None and rec.due is not None and self.clock() >= rec.due

    def retry_failed(self, component: str) -> None:
        """The restart itself failed: the component is failed again, not waiting for a restart."""
        self._records[component].due = None

    def restarted(self, component: str) -> None:
        rec = self._records[component]
        rec.due = None
        rec.restarts += 1
        PIPELINE_RESTARTS.labels(component).inc()
        log.warning("pipeline component restarted", extra={"component": component, "restarts": rec.restarts})

    def summary(self) -> str:
        """One line for ``/health`` and ``eventlake status``: restarts so far, per component."""
        parts = [
            f"{name} restarted {r.restarts}x (last error: {r.last_error})"
            + (f", {r.outage_failures} failure(s) during outages" if r.outage_failures else "")
            + (" - restart pending" if r.due is not None else "")
            for name, r in sorted(self._records.items())
        ]
        return "; ".join(parts) or "no restarts"
