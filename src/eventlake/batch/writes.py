"""Reads and writes of the batch side: one time range of a table, nothing outside it."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from eventlake.config import Settings
from eventlake.streaming.paths import table
from eventlake.streaming.sinks.postgres import replace_windows
from eventlake.streaming.specs import GoldSpec, ensure_gold_table, spark_schema
from eventlake.streaming.tables import create_table


def silver_between(spark: SparkSession, settings: Settings, source: str, lo: dt.datetime, hi: dt.datetime) -> DataFrame:
    """Silver rows of ``source`` with ``lo <= event_time < hi`` (Delta skips files by their statistics)."""
    t = F.col("event_time")
    return spark.read.format("delta").load(table(settings, "silver", source)).where((t >= F.lit(lo)) & (t < F.lit(hi)))


def replace_range(
    df: DataFrame, path: str, column: str, lo: dt.datetime, hi: dt.datetime, *, merge_schema: bool = False
) -> None:
    """Overwrite the rows of ``path`` with ``lo <= column < hi`` by ``df`` in one Delta commit
    (``replaceWhere``): a rerun leaves the same table, other ranges are untouched, and Delta
    refuses the write if ``df`` holds a row outside the range. ``merge_schema``: add the columns
    ``df`` has and the table lacks (silver follows the subject's newest schema)."""
    predicate = f"{column} >= timestamp'{_sql_ts(lo)}' AND {column} < timestamp'{_sql_ts(hi)}'"
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .option("mergeSchema", str(merge_schema).lower())
        .save(path)
    )


def _sql_ts(t: dt.datetime) -> str:
    """A UTC timestamp literal (the session time zone is UTC)."""
    return t.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")


def write_gold(
    spark: SparkSession,
    settings: Settings,
    postgres_url: str,
    spec: GoldSpec,
    windows: DataFrame,
    *,
    lo: dt.datetime,
    hi: dt.datetime,
) -> int:
    """Replace the windows ``lo <= window_start < hi`` of ``spec`` by ``windows``, in PostgreSQL and
    in Delta ``gold/<table>``; returns the number of rows."""
    windows = windows.select(*spec.columns).cache()
    try:
        ensure_gold_table(postgres_url, spec)
        _, written = replace_windows(postgres_url, spec, lo, hi, (tuple(r) for r in windows.toLocalIterator()))
        path = table(settings, "gold", spec.table)
        create_table(spark, path, spark_schema(spec))
        replace_range(windows, path, "window_start", lo, hi)
    finally:
        windows.unpersist()
    return written
