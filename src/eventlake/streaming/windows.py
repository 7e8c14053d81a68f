"""Open-window state: the silver rows of every window that can still change, held in Spark memory.

Gold rows are exact aggregates of all valid, de-duplicated events of a window (distinct users and
p95 included), so updating a window needs its rows, not running sums. Instead of re-reading the lake
each micro-batch, the pass keeps the (few) columns gold needs of the open windows' rows as cached
pieces, one per batch, compacted now and then. The same rows are the de-duplication state: an event
whose ``event_id`` is held here is a duplicate (within the lateness horizon, as Spark's
``dropDuplicatesWithinWatermark``; older events are late anyway).

The state equals silver restricted to ``event_time >= floor``: it is built from silver on the first
batch of a process (time travel to the version *before* that batch, so a replayed batch sees what its
first run saw), grows by each batch's new silver rows, and is extended from silver when a batch
reaches back before its floor (a partition lagging behind the others). Memory is bounded by the
horizon: pieces wholly older than ``newest - lateness - longest window`` are dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


def _max_time(df: DataFrame) -> tuple[int, dt.datetime | None]:
    """Rows and newest event_time of ``df``, aware UTC."""
    n, hi = df.agg(F.count("*"), F.max("event_time")).head() or (0, None)
    return int(n), (hi.astimezone(dt.UTC) if hi is not None else None)


def hold(df: DataFrame) -> DataFrame:
    """``df`` materialised in memory (spilling to disk) with its lineage cut: a piece's plan must not
    grow with every batch that came before it (long lineages slow every job, then overflow the stack)."""
    return df.localCheckpoint(eager=True)


def release(df: DataFrame | None) -> None:
    """Free a ``hold``-ed DataFrame's blocks now rather than at the JVM's next GC (None: nothing held)."""
    if df is None:
        return
    try:
        df._jdf.queryExecution().logical().rdd().unpersist(False)
    except Exception:
        log.debug("no checkpointed RDD to release", exc_info=True)


@dataclass
class _Piece:
    df: DataFrame  # held (see ``hold``)
    hi: dt.datetime | None  # newest event_time in it (None: empty)
    floor: dt.datetime | None  # rows older than this are not part of the state (already evicted)
    ceiling: dt.datetime | None = None  # rows from here on are held by other pieces (an extension piece)
    #: loaded from silver or merged from batch pieces: left alone by the next compaction
    compacted: bool = False

    def rows(self) -> DataFrame:
        df = self.df
        if self.floor is not None:
            df = df.where(F.col("event_time") >= F.lit(self.floor))
        if self.ceiling is not None:
            df = df.where(F.col("event_time") < F.lit(self.ceiling))
        return df


class OpenWindows:
    """The state of one source's pass. Each batch adds a piece; once more than ``compact_after``
    batch pieces have gathered, they are merged into one (only they: the pieces loaded from silver
    and those merged before are left alone, so a compaction costs the rows of ``compact_after``
    batches, not the whole state; soak run I measured 30-32 s batches compacting it all). Should
    the merged pieces themselves exceed ``compact_after`` (a long horizon), every piece is merged."""

    def __init__(self, spark: SparkSession, silver_path: str, columns: list[str], *, compact_after: int = 12) -> None:
        self.spark = spark
        self.silver_path = silver_path
        self.columns = columns
        self.compact_after = compact_after
        self._pieces: list[_Piece] = []
        self.floor: dt.datetime | None = None  # None: nothing loaded yet
        self.loaded = False

    def reset(self) -> None:
        """Forget everything (after a failed batch): the next batch rebuilds from silver."""
        for p in self._pieces:
            release(p.df)
        self._pieces = []
        self.floor = None
        self.loaded = False

    def ensure(self, version: int, since: dt.datetime, *, empty: bool = False) -> None:
        """Make the state hold every silver row (as of table ``version``) with ``event_time >= since``.
        ``empty``: the caller knows silver has no rows at ``version`` (nothing to read)."""
        if self.loaded and self.floor is not None and since >= self.floor:
            return
        if empty:
            self.floor, self.loaded = since, True
            return
        silver = (
            self.spark.read.format("delta")
            .option("versionAsOf", version)
            .load(self.silver_path)
            .where(F.col("event_time") >= F.lit(since))
        )
        ceiling = self.floor if self.loaded else None
        if ceiling is not None:
            silver = silver.where(F.col("event_time") < F.lit(ceiling))
        df = hold(silver.select(*self.columns))
        n, hi = _max_time(df)
        log.info(
            "open windows loaded from silver",
            extra={"path": self.silver_path, "version": version, "since": since.isoformat(), "rows": n},
        )
        self._pieces.append(_Piece(df, hi, since, ceiling, compacted=True))
        self.floor = since
        self.loaded = True

    def rows(self, lo: dt.datetime, hi: dt.datetime | None = None) -> DataFrame | None:
        """The held rows with ``lo <= event_time < hi`` (None: nothing held)."""
        parts = [p.rows() for p in self._pieces if p.hi is not None and p.hi >= lo]
        if not parts:
            return None
        df = reduce(DataFrame.unionByName, parts).where(F.col("event_time") >= F.lit(lo))
        return df.where(F.col("event_time") < F.lit(hi)) if hi is not None else df

    def add(self, rows: DataFrame, known: tuple[int, dt.datetime | None] | None = None) -> int:
        """Hold a batch's new silver rows (materialised here, once); returns how many there are.
        ``known``: their count and newest event time when the caller has them (no job to find them)."""
        piece = hold(rows.select(*self.columns))
        n, hi = known if known is not None else _max_time(piece)
        self._pieces.append(_Piece(piece, hi, self.floor))
        if sum(not p.compacted for p in self._pieces) > self.compact_after:
            self._compact([p for p in self._pieces if not p.compacted])
        if sum(p.compacted for p in self._pieces) > self.compact_after:
            self._compact(self._pieces)
        return n

    def evict(self, before: dt.datetime) -> None:
        """Drop rows older than ``before`` (the windows they belong to can no longer change)."""
        if self.floor is not None and before <= self.floor:
            return
        self.floor = before
        kept: list[_Piece] = []
        for p in self._pieces:
            if p.hi is None or p.hi < before:
                release(p.df)
            else:
                p.floor = before if p.floor is None else max(p.floor, before)
                kept.append(p)
        self._pieces = kept

    def _compact(self, pieces: list[_Piece]) -> None:
        """Merge ``pieces`` into one. Its newest event time is theirs (a bound: rows below the floor
        are left out), so no job counts the merged rows."""
        merged = reduce(DataFrame.unionByName, [p.rows() for p in pieces])
        merged = hold(merged.coalesce(max(1, self.spark.sparkContext.defaultParallelism)))
        his = [p.hi for p in pieces if p.hi is not None]
        gone = {id(p) for p in pieces}
        for p in pieces:
            release(p.df)
        kept = [p for p in self._pieces if id(p) not in gone]
        self._pieces = [*kept, _Piece(merged, max(his) if his else None, self.floor, compacted=True)]
        log.debug("open windows compacted", extra={"path": self.silver_path, "pieces": len(pieces)})
