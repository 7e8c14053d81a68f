"""A ``StreamingQueryListener`` that keeps per-query progress: the hook metrics exporters read.

Per query it records the batches seen, input rows (cumulative), input and processed rows/s,
batch duration, the event-time watermark and the rows held in state. ``snapshot()`` returns a copy
that is safe to read from another thread (a Prometheus collector, the CLI's progress line).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql.streaming.listener import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryListener,
)


@dataclass(frozen=True)
class QueryProgress:
    name: str
    batches: int = 0
    input_rows_total: int = 0
    input_rows_per_s: float = 0.0
    processed_rows_per_s: float = 0.0
    batch_duration_s: float = 0.0
    watermark: str | None = None
    state_rows: int = 0
    terminated: bool = False
    error: str | None = None


class ProgressRecorder(StreamingQueryListener):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._queries: dict[str, QueryProgress] = {}
        self._names: dict[str, str] = {}  # query id -> name (terminated events carry the id only)

    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        name = event.name or str(event.id)
        with self._lock:
            self._names[str(event.id)] = name
            self._queries.setdefault(name, QueryProgress(name))

    def onQueryProgress(self, event: QueryProgressEvent) -> None:
        p = event.progress
        name = p.name or str(p.id)
        event_time: dict[str, Any] = dict(p.eventTime or {})
        state_rows = sum(op.numRowsTotal for op in (p.stateOperators or []))
        with self._lock:
            old = self._queries.get(name, QueryProgress(name))
            self._queries[name] = replace(
                old,
                batches=old.batches + 1,
                input_rows_total=old.input_rows_total + int(p.numInputRows),
                input_rows_per_s=float(p.inputRowsPerSecond or 0.0),
                processed_rows_per_s=float(p.processedRowsPerSecond or 0.0),
                batch_duration_s=float(p.batchDuration) / 1000,
                watermark=event_time.get("watermark", old.watermark),
                state_rows=int(state_rows),
            )

    def onQueryIdle(self, event: QueryIdleEvent) -> None:
        return None  # an idle trigger changes no figure

    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:
        with self._lock:
            name = self._names.get(str(event.id), str(event.id))
            old = self._queries.get(name, QueryProgress(name))
            error = event.exception.splitlines()[0] if event.exception else None
            self._queries[name] = replace(old, terminated=True, error=error)

    def snapshot(self) -> dict[str, QueryProgress]:
        with self._lock:
            return dict(self._queries)
