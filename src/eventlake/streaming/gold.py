"""Gold: 1-minute tumbling event-time windows, exact, upserted to PostgreSQL and Delta.

Per micro-batch of new silver rows, the windows the batch touches are **recomputed from silver**
(all valid, de-duplicated events of those windows) and upserted: each PostgreSQL row always equals
the exact aggregate of everything seen so far, including exact distinct counts, which Spark's
streaming state could only approximate. A replayed batch recomputes the same numbers, and the
PostgreSQL upsert runs in one transaction with a row in ``eventlake_stream_commits`` keyed by
(query, batch id), so a batch is applied once. Late events never reach silver (see silver.py), so
a window stops changing once the watermark passes it. The Delta table ``gold/<table>`` receives
the same rows by MERGE on the window and group keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import psycopg
from delta.tables import DeltaTable
from psycopg import sql
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from eventlake.config import Settings
from eventlake.observability.metrics import ANOMALIES, SINK_COMMIT, SINK_ROWS
from eventlake.quality.anomaly import detect
from eventlake.quality.rules import Detector
from eventlake.streaming.paths import checkpoint, table, with_trigger
from eventlake.streaming.specs import GOLD_SPECS, SPECS_BY_SOURCE, GoldSpec, ensure_gold_table

log = logging.getLogger(__name__)

__all__ = ["GOLD_SPECS", "SPECS_BY_SOURCE", "GoldSpec", "ensure_gold_table", "make_gold_batch", "start_gold", "upsert"]


def upsert(url: str, spec: GoldSpec, query: str, batch_id: int, rows: list[tuple[object, ...]]) -> bool:
    """Upsert ``rows`` (in ``spec.columns`` order) once per (query, batch id). False if already applied."""
    cols = spec.columns
    statement = sql.SQL(
        "INSERT INTO {t} ({c}) VALUES ({v}) ON CONFLICT ({k}) DO UPDATE SET {u}, updated_at = now()"
    ).format(
        t=sql.Identifier(spec.table),
        c=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        v=sql.SQL(", ").join(sql.Placeholder() for _ in cols),
        k=sql.SQL(", ").join(sql.Identifier(c) for c in spec.key_columns),
        u=sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in cols if c not in spec.key_columns
        ),
    )
    with psycopg.connect(url) as conn, conn.transaction():
        done = conn.execute(
            "INSERT INTO eventlake_stream_commits (query, batch_id, rows_written) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (query, batch_id, len(rows)),
        ).fetchone()
        if done is None:
            return False
        if rows:
            conn.cursor().executemany(statement, rows)
    return True


def aggregate(silver: DataFrame, spec: GoldSpec) -> DataFrame:
    """The spec's exact aggregates per event-time window of ``silver``."""
    w = F.window("event_time", f"{spec.window_minutes} minutes", f"{spec.slide_minutes} minutes")
    return (
        silver.groupBy(w.alias("w"), *(k for k, _ in spec.keys))
        .agg(*(F.expr(expr).alias(name) for name, expr, _ in spec.aggs))
        .select(
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            *(k for k, _ in spec.keys),
            *(a for a, _, _ in spec.aggs),
        )
    )


def touched_windows(batch: DataFrame, spec: GoldSpec) -> DataFrame:
    """Start times of every window the batch's events fall in (one for tumbling, several if sliding)."""
    minute = F.date_trunc("minute", "event_time")
    back = spec.window_minutes - spec.slide_minutes
    starts = F.sequence(
        minute - F.expr(f"INTERVAL {back} MINUTES"), minute, F.expr(f"INTERVAL {spec.slide_minutes} MINUTES")
    )
    return batch.select(F.explode(starts).alias("ws")).distinct()


BatchFn = Callable[[DataFrame, int], None]


def make_gold_batch(
    spark: SparkSession, settings: Settings, source: str, postgres_url: str, detectors: Sequence[Detector] = ()
) -> BatchFn:
    """Recompute, for each gold table of ``source``, the windows a batch of silver rows touches; then
    score the windows that closed with the anomaly ``detectors`` of those tables."""
    name = f"gold_{source}"
    silver_path = table(settings, "silver", source)
    specs = SPECS_BY_SOURCE[source]
    mine = [d for d in detectors if d.table in {s.table for s in specs}]

    def process(batch: DataFrame, batch_id: int) -> None:
        batch = batch.select("event_time").persist()
        try:
            for spec in specs:
                _apply(
                    spark,
                    spec,
                    batch,
                    batch_id,
                    query=f"{name}:{spec.table}",
                    silver_path=silver_path,
                    gold_path=table(settings, "gold", spec.table),
                    postgres_url=postgres_url,
                )
            if mine:
                with psycopg.connect(postgres_url) as conn:
                    for d in mine:
                        found = detect(conn, d, source, settings.streaming.allowed_lateness_s)
                        if found:
                            ANOMALIES.labels(source, d.name).inc(len(found))
                            log.info("anomalies", extra={"detector": d.name, "found": len(found)})
        finally:
            batch.unpersist()

    return process


def _apply(
    spark: SparkSession,
    spec: GoldSpec,
    batch: DataFrame,
    batch_id: int,
    *,
    query: str,
    silver_path: str,
    gold_path: str,
    postgres_url: str,
) -> None:
    touched = touched_windows(batch, spec).persist()
    try:
        lo, hi = touched.agg(F.min("ws"), F.max("ws")).collect()[0]
        if lo is None:
            upsert(postgres_url, spec, query, batch_id, [])
            return
        length = F.expr(f"INTERVAL {spec.window_minutes} MINUTES")
        silver = (
            spark.read.format("delta")
            .load(silver_path)
            .where((F.col("event_time") >= F.lit(lo)) & (F.col("event_time") < F.lit(hi) + length))
        )
        result = (
            aggregate(silver, spec)
            .join(F.broadcast(touched), F.col("window_start") == F.col("ws"), "left_semi")
            .persist()
        )
        rows = [tuple(r[c] for c in spec.columns) for r in result.collect()]
        # Delta first: the merge is idempotent (recomputed values), so a crash before the
        # PostgreSQL commit below just redoes it; the PostgreSQL batch then applies once.
        with SINK_COMMIT.labels("delta", f"gold/{spec.table}").time():
            _merge_delta(spark, result, gold_path, spec)
        SINK_ROWS.labels("delta", f"gold/{spec.table}").inc(len(rows))
        with SINK_COMMIT.labels("postgres", spec.table).time():
            applied = upsert(postgres_url, spec, query, batch_id, rows)
        if applied:
            SINK_ROWS.labels("postgres", spec.table).inc(len(rows))
        result.unpersist()
        log.info("gold batch", extra={"query": query, "batch_id": batch_id, "rows": len(rows), "applied": applied})
    finally:
        touched.unpersist()


def _merge_delta(spark: SparkSession, result: DataFrame, path: str, spec: GoldSpec) -> None:
    if not DeltaTable.isDeltaTable(spark, path):
        DeltaTable.createIfNotExists(spark).location(path).addColumns(result.schema).execute()
    cond = " AND ".join(f"t.{c} <=> s.{c}" for c in spec.key_columns)
    DeltaTable.forPath(spark, path).alias("t").merge(
        result.alias("s"), cond
    ).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()


def start_gold(
    spark: SparkSession,
    settings: Settings,
    source: str,
    *,
    postgres_url: str,
    until_idle: bool,
    detectors: Sequence[Detector] = (),
) -> StreamingQuery:
    for spec in SPECS_BY_SOURCE[source]:
        ensure_gold_table(postgres_url, spec)
    name = f"gold_{source}"
    stream = (
        spark.readStream.format("delta").option("skipChangeCommits", "true").load(table(settings, "silver", source))
    )
    writer = (
        stream.writeStream.queryName(name)
        .foreachBatch(make_gold_batch(spark, settings, source, postgres_url, detectors))
        .option("checkpointLocation", checkpoint(settings, name))
    )
    writer = with_trigger(writer, settings, until_idle=until_idle)
    return writer.start()
