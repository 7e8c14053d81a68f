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
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from delta.tables import DeltaTable
from psycopg import sql
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from eventlake.config import Settings
from eventlake.streaming.paths import checkpoint, table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoldSpec:
    """One gold table: group keys and aggregates (Spark SQL), with their PostgreSQL types."""

    table: str
    source: str
    keys: tuple[tuple[str, str], ...]  # (column, pg type)
    aggs: tuple[tuple[str, str, str], ...]  # (column, spark sql aggregate, pg type)

    @property
    def key_columns(self) -> list[str]:
        return ["window_start", *(k for k, _ in self.keys)]

    @property
    def columns(self) -> list[str]:
        return ["window_start", "window_end", *(k for k, _ in self.keys), *(a for a, _, _ in self.aggs)]


GOLD_SPECS: tuple[GoldSpec, ...] = (
    GoldSpec(
        "gold_user_activity_1m",
        "user_activity",
        keys=(("event_type", "text"),),
        aggs=(("events", "count(*)", "bigint"), ("unique_users", "count(DISTINCT user_id)", "bigint")),
    ),
    GoldSpec(
        "gold_iot_sensors_1m",
        "iot_sensors",
        keys=(("device_id", "text"), ("sensor_type", "text")),
        aggs=(
            ("readings", "count(*)", "bigint"),
            ("avg_value", "avg(value)", "double precision"),
            ("min_value", "min(value)", "double precision"),
            ("max_value", "max(value)", "double precision"),
        ),
    ),
    GoldSpec(
        "gold_transactions_1m",
        "transactions",
        keys=(("merchant_category", "text"),),
        aggs=(
            ("txn_count", "count(*)", "bigint"),
            ("amount_sum", "sum(amount)", "double precision"),
            ("declined_count", "count_if(status = 'DECLINED')", "bigint"),
        ),
    ),
)
SPECS_BY_SOURCE = {s.source: s for s in GOLD_SPECS}


def ensure_gold_table(url: str, spec: GoldSpec) -> None:
    cols: list[sql.Composable] = [
        sql.SQL("window_start timestamptz NOT NULL"),
        sql.SQL("window_end timestamptz NOT NULL"),
    ]
    cols += [sql.SQL("{} {} NOT NULL").format(sql.Identifier(k), sql.SQL(t)) for k, t in spec.keys]
    cols += [sql.SQL("{} {}").format(sql.Identifier(a), sql.SQL(t)) for a, _, t in spec.aggs]
    cols.append(sql.SQL("updated_at timestamptz NOT NULL DEFAULT now()"))
    pk = sql.SQL(", ").join(sql.Identifier(c) for c in spec.key_columns)
    ddl = sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
        sql.Identifier(spec.table), sql.SQL(", ").join(cols), pk
    )
    with psycopg.connect(url) as conn:
        conn.execute(ddl)


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
    """The spec's exact aggregates per 1-minute window of ``silver``."""
    w = F.window("event_time", "1 minute")
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


BatchFn = Callable[[DataFrame, int], None]


def make_gold_batch(spark: SparkSession, settings: Settings, spec: GoldSpec, postgres_url: str) -> BatchFn:
    name = f"gold_{spec.source}"
    silver_path = table(settings, "silver", spec.source)
    gold_path = table(settings, "gold", spec.table)

    def process(batch: DataFrame, batch_id: int) -> None:
        touched = batch.select(F.date_trunc("minute", "event_time").alias("ws")).distinct()
        bounds = touched.agg(F.min("ws"), F.max("ws")).collect()[0]
        if bounds[0] is None:
            upsert(postgres_url, spec, name, batch_id, [])
            return
        silver = (
            spark.read.format("delta")
            .load(silver_path)
            .where(
                (F.col("event_time") >= F.lit(bounds[0]))
                & (F.col("event_time") < F.lit(bounds[1]) + F.expr("INTERVAL 1 MINUTE"))
            )
        )
        affected = silver.join(F.broadcast(touched), F.date_trunc("minute", "event_time") == F.col("ws"), "left_semi")
        result = aggregate(affected, spec).persist()
        try:
            rows = [tuple(r[c] for c in spec.columns) for r in result.collect()]
            # Delta first: the merge is idempotent (recomputed values), so a crash before the
            # PostgreSQL commit below just redoes it; the PostgreSQL batch then applies once.
            _merge_delta(spark, result, gold_path, spec)
            applied = upsert(postgres_url, spec, name, batch_id, rows)
            log.info("gold batch", extra={"query": name, "batch_id": batch_id, "rows": len(rows), "applied": applied})
        finally:
            result.unpersist()

    return process


def _merge_delta(spark: SparkSession, result: DataFrame, path: str, spec: GoldSpec) -> None:
    if not DeltaTable.isDeltaTable(spark, path):
        DeltaTable.createIfNotExists(spark).location(path).addColumns(result.schema).execute()
    cond = " AND ".join(f"t.{c} <=> s.{c}" for c in spec.key_columns)
    DeltaTable.forPath(spark, path).alias("t").merge(
        result.alias("s"), cond
    ).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()


def start_gold(
    spark: SparkSession, settings: Settings, source: str, *, postgres_url: str, until_idle: bool
) -> StreamingQuery:
    spec = SPECS_BY_SOURCE[source]
    ensure_gold_table(postgres_url, spec)
    name = f"gold_{source}"
    stream = (
        spark.readStream.format("delta").option("skipChangeCommits", "true").load(table(settings, "silver", source))
    )
    writer = (
        stream.writeStream.queryName(name)
        .foreachBatch(make_gold_batch(spark, settings, spec, postgres_url))
        .option("checkpointLocation", checkpoint(settings, name))
    )
    writer = (
        writer.trigger(availableNow=True)
        if until_idle
        else writer.trigger(processingTime=f"{settings.streaming.trigger_s} seconds")
    )
    return writer.start()
