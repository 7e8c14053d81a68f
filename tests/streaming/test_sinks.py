"""Delta write conflicts (another writer's commit, e.g. OPTIMIZE next to the gold MERGE) are retried;
any other error is not. An append writes at most its ``files``, once per batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from eventlake.streaming.sinks import delta
from eventlake.streaming.sinks.delta import DeltaAppend, retry_conflicts


def test_a_conflict_is_retried_until_it_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delta.time, "sleep", lambda _s: None)  # the backoff itself is not under test
    calls: list[int] = []

    def merge() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("io.delta.exceptions.ConcurrentDeleteReadException: a concurrent OPTIMIZE ...")

    retry_conflicts("merge gold/x", merge)
    assert len(calls) == 3


def test_other_errors_and_endless_conflicts_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delta.time, "sleep", lambda _s: None)
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("column window_start not found")

    with pytest.raises(ValueError, match="window_start"):
        retry_conflicts("merge gold/x", broken)
    assert len(calls) == 1

    def always() -> None:
        calls.append(1)
        raise RuntimeError("ConcurrentAppendException")

    with pytest.raises(RuntimeError, match="ConcurrentAppendException"):
        retry_conflicts("merge gold/x", always, attempts=3)
    assert len(calls) == 1 + 3


def test_an_append_writes_at_most_its_files_and_its_replay_writes_nothing(spark: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "bronze")
    sink = DeltaAppend(path, "q_bronze", "bronze/x", files=2)
    batch = spark.range(0, 600, numPartitions=6)  # as a micro-batch of six Kafka partitions
    sink.write(batch, 7, replay=False)
    sink.write(batch, 7)  # a replay of batch 7: its marker is in the table, nothing is appended
    table = DeltaTable(path)
    assert len(table.file_uris()) == 2
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == list(range(600))
    unlimited = str(tmp_path / "unlimited")
    DeltaAppend(unlimited, "q_bronze", "bronze/y").write(batch, 7, replay=False)
    assert len(DeltaTable(unlimited).file_uris()) == 6


def test_an_upsert_appends_into_a_just_created_table_then_merges(spark: Any, tmp_path: Path) -> None:
    """The first write into an empty gold table is an append; every later one, and a replay's (a new
    sink on the same table, as after kill -9), is a MERGE: updated rows, never a duplicate key."""
    from delta.tables import DeltaTable as SparkDeltaTable  # noqa: PLC0415
    from pyspark.sql import functions as F  # noqa: PLC0415

    path = str(tmp_path / "gold")

    def rows(n: int, value: int) -> Any:
        return spark.range(n).select(
            F.timestamp_seconds(F.col("id") * 60).alias("window_start"),
            F.lit("k").alias("key"),
            F.lit(value).cast("long").alias("total"),
        )

    SparkDeltaTable.createIfNotExists(spark).location(path).addColumns(rows(1, 0).schema).execute()
    first = delta.DeltaUpsert(path, ("window_start", "key"), "gold/x")
    first.write(rows(3, 1), 0)
    first.write(rows(4, 2), 1)  # windows 0-2 updated, window 3 inserted
    delta.DeltaUpsert(path, ("window_start", "key"), "gold/x").write(rows(4, 2), 1)  # the replay of batch 1
    table = DeltaTable(path)
    assert [h["operation"] for h in reversed(table.history())] == ["CREATE TABLE", "WRITE", "MERGE", "MERGE"]
    got = table.to_pyarrow_table().to_pylist()
    assert sorted((r["window_start"].timestamp(), r["total"]) for r in got) == [(i * 60.0, 2) for i in range(4)]
