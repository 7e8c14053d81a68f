"""Delta write conflicts (another writer's commit, e.g. OPTIMIZE next to the gold MERGE) are retried;
any other error is not."""

from __future__ import annotations

import pytest

from eventlake.streaming.sinks import delta
from eventlake.streaming.sinks.delta import retry_conflicts


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
