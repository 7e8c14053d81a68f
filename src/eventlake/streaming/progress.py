"""A ``StreamingQueryListener`` that keeps per-query progress: the hook metrics exporters read.

Per query it records the batches seen, input rows (cumulative), input and processed rows/s,
batch duration, the event-time watermark and the rows held in state. ``snapshot()`` returns a copy
that is safe to read from another thread (a Prometheus collector, the CLI's progress line).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql.streaming.listener import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryListener,
)

from eventlake.observability.lag import Offsets
from eventlake.observability.metrics import (
    STREAM_BATCH_DURATION,
    STREAM_INPUT_ROWS,
    STREAM_LAST_PROGRESS,
    STREAM_ROWS_PER_S,
    STREAM_STATE_ROWS,
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


def kafka_offsets(text: str | None) -> Offsets:
    """A Kafka source's ``endOffset`` JSON (``{"topic": {"0": 42}}``); {} for other sources."""
    try:
        doc = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        return {}
    try:
        return {t: {int(p): int(o) for p, o in parts.items()} for t, parts in doc.items()}
    except (TypeError, ValueError):
        return {}  # e.g. a Delta source's offset: not partition -> offset


class ProgressRecorder(StreamingQueryListener):
    """Keeps the latest figures per query and exports them as Prometheus metrics."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._queries: dict[str, QueryProgress] = {}
        self._names: dict[str, str] = {}  # query id -> name (terminated events carry the id only)
        self._offsets: dict[str, Offsets] = {}

    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        name = event.name or str(event.id)
        with self._lock:
            self._names[str(event.id)] = name
            # A restarted query (same name) is running again: its figures go on, its failure is over.
            self._queries[name] = replace(self._queries.get(name, QueryProgress(name)), terminated=False, error=None)

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
            for source in p.sources or []:
                offsets = kafka_offsets(source.endOffset)
                if offsets:
                    self._offsets[name] = offsets
        STREAM_INPUT_ROWS.labels(name).inc(int(p.numInputRows))
        STREAM_ROWS_PER_S.labels(name).set(float(p.processedRowsPerSecond or 0.0))
        STREAM_BATCH_DURATION.labels(name).observe(float(p.batchDuration) / 1000)
        STREAM_STATE_ROWS.labels(name).set(int(state_rows))
        STREAM_LAST_PROGRESS.labels(name).set(time.time())

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

    def kafka_offsets(self) -> dict[str, Offsets]:
        """Per query reading Kafka: the offsets its last micro-batch read up to (checkpointed)."""
        with self._lock:
            return {q: {t: dict(p) for t, p in o.items()} for q, o in self._offsets.items()}
