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
