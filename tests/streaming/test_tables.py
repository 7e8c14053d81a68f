"""The lake's table layout on real Spark and Delta: which columns Delta keeps statistics of, and which
columns Parquet writes without a dictionary (both cost work per row written)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from delta.tables import DeltaTable

from eventlake.streaming.session import DISTINCT_COLUMNS
from eventlake.streaming.tables import BRONZE_SCHEMA, STATS_COLUMNS, STATS_PROPERTY, create_table

pytestmark = pytest.mark.e2e


def _append_bronze(spark: Any, path: str, n: int) -> None:
    t0 = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    rows = [
        (b"device-%d" % (i % 5), os.urandom(40), "raw.t", i % 3, i, t0 + dt.timedelta(seconds=i), []) for i in range(n)
    ]
    spark.createDataFrame(rows, BRONZE_SCHEMA).coalesce(1).write.format("delta").mode("append").save(path)


def _added(table_dir: Path) -> list[dict[str, Any]]:
    """The ``add`` actions of the table's newest commit."""
    newest = sorted((table_dir / "_delta_log").glob("*.json"))[-1]
    actions = [json.loads(line) for line in newest.read_text().splitlines()]
    return [a["add"] for a in actions if "add" in a]


def test_bronze_keeps_stats_of_the_columns_its_reads_filter_on_only(spark: Any, tmp_path: Path) -> None:
    table_dir = tmp_path / "bronze"  # a plain path, as streaming.paths.table gives for a local lake
    create_table(spark, str(table_dir), BRONZE_SCHEMA, stats_columns=STATS_COLUMNS["bronze"])
    _append_bronze(spark, str(table_dir), 3000)

    (add,) = _added(table_dir)
    stats = json.loads(add["stats"])
    assert stats["numRecords"] == 3000
    assert set(stats["minValues"]) == {"partition", "offset", "kafka_timestamp"}
    assert stats["minValues"]["offset"] == 0 and stats["maxValues"]["offset"] == 2999


def test_columns_of_distinct_values_are_written_without_a_dictionary(spark: Any, tmp_path: Path) -> None:
    """Parquet keeps a dictionary where it pays; for the columns eventlake names distinct it does not
    try one. (Truly distinct values fall back to plain after the first page either way, so the check
    uses few values, where Parquet would otherwise keep the dictionary.)"""
    assert "event_id" in DISTINCT_COLUMNS
    path = tmp_path / "t"
    rows = [(f"id-{i % 5}", f"category-{i % 5}") for i in range(3000)]
    spark.createDataFrame(rows, "event_id STRING, merchant_category STRING").coalesce(1).write.parquet(str(path))
    meta = pq.ParquetFile(next(path.glob("*.parquet"))).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: set(meta.column(i).encodings) for i in range(meta.num_columns)}
    dictionary = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
    assert not encodings["event_id"] & dictionary
    assert encodings["merchant_category"] & dictionary


def test_an_existing_table_gets_the_stats_columns_set(spark: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "silver")
    create_table(spark, path, "event_id STRING, event_time TIMESTAMP, amount DOUBLE")
    assert STATS_PROPERTY not in DeltaTable.forPath(spark, path).detail().head()["properties"]

    create_table(spark, path, "event_id STRING, event_time TIMESTAMP, amount DOUBLE", stats_columns=("event_time",))
    assert DeltaTable.forPath(spark, path).detail().head()["properties"][STATS_PROPERTY] == "event_time"
