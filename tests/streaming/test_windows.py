"""The open-window state on the real Spark session: compaction merges only the batch pieces gathered
since the last one (not the whole state), and every read still returns exactly the rows held."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import DataFrame

from eventlake.streaming.windows import OpenWindows

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
PER_BATCH = 5


def _batch(spark: Any, b: int) -> DataFrame:
    """Batch ``b``: ``PER_BATCH`` events a second apart, batch ``b`` starting ``b`` minutes after ``T0``."""
    rows = [(f"e{b}-{i}", T0 + dt.timedelta(minutes=b, seconds=i)) for i in range(PER_BATCH)]
    return spark.createDataFrame(rows, "event_id string, event_time timestamp")


def _ids(df: DataFrame | None) -> set[str]:
    return set() if df is None else {r.event_id for r in df.collect()}


def test_compaction_merges_only_the_new_batch_pieces_and_keeps_every_row(spark: Any, tmp_path: Any) -> None:
    state = OpenWindows(spark, str(tmp_path / "silver-unused"), ["event_id", "event_time"], compact_after=3)
    pieces = []
    for b in range(16):
        last = _batch(spark, b)
        assert state.add(last, (PER_BATCH, T0 + dt.timedelta(minutes=b, seconds=PER_BATCH - 1))) == PER_BATCH
        pieces.append(len(state._pieces))
        assert _ids(state.rows(T0)) == {f"e{x}-{i}" for x in range(b + 1) for i in range(PER_BATCH)}, b
        if b == 7:
            # The second compaction merged batches 4-7 into a piece of their own: the first merged
            # piece (batches 0-3) was not read again.
            assert state._pieces[0].df.count() == 4 * PER_BATCH
            assert state._pieces[-1].df.count() == 4 * PER_BATCH
    # Four batch pieces are merged into one; when merged pieces exceed three, all are merged.
    assert pieces == [1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6, 1]

    # A read from a later time returns just the rows from then on.
    assert _ids(state.rows(T0 + dt.timedelta(minutes=14))) == {f"e{x}-{i}" for x in (14, 15) for i in range(PER_BATCH)}
    state.evict(T0 + dt.timedelta(minutes=12))
    assert _ids(state.rows(T0)) == {f"e{x}-{i}" for x in range(12, 16) for i in range(PER_BATCH)}
    state.reset()
    assert state.rows(T0) is None
