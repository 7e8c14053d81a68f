"""Gold: event-time windows (1-minute tumbling, 5-minute sliding), exact, from the batch plus open-window state.

For each micro-batch, the windows that gained new silver rows are recomputed from the open-window
state (``windows.OpenWindows``: the silver rows of windows that can still change, in memory) plus the
batch's new rows, and upserted: every PostgreSQL row always equals the exact aggregate of everything
seen so far, including exact distinct counts and exact p95, which Spark's streaming aggregation could
not give. A replayed batch recomputes the same numbers; the PostgreSQL upsert runs in one transaction
with a row in ``eventlake_stream_commits`` keyed (query, batch id), so a batch is applied once. Late
events never reach silver, so a window stops changing once the watermark passes it. The Delta table
``gold/<table>`` receives the same rows by a MERGE pruned to the batch's windows.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from eventlake.streaming.specs import GOLD_SPECS, SPECS_BY_SOURCE, GoldSpec, ensure_gold_table

__all__ = ["GOLD_SPECS", "SPECS_BY_SOURCE", "GoldSpec", "aggregate", "ensure_gold_table", "touched"]


def aggregate(rows: DataFrame, spec: GoldSpec) -> DataFrame:
    """The spec's exact aggregates per event-time window of ``rows``."""
    w = F.window("event_time", f"{spec.window_minutes} minutes", f"{spec.slide_minutes} minutes")
    return (
        rows.groupBy(w.alias("w"), *(k for k, _ in spec.keys))
        .agg(*(F.expr(expr).alias(name) for name, expr, _ in spec.aggs))
        .select(
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            *(k for k, _ in spec.keys),
            *(a for a, _, _ in spec.aggs),
        )
    )


def touched(minutes: list[dt.datetime], spec: GoldSpec) -> list[dt.datetime]:
    """Start times of every window of ``spec`` that events in these minutes fall in."""
    back = spec.window_minutes - spec.slide_minutes
    starts: set[dt.datetime] = set()
    for m in minutes:
        starts.update(m - dt.timedelta(minutes=k) for k in range(0, back + 1, spec.slide_minutes))
    return sorted(starts)
