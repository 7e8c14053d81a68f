"""Delta Lake sinks: idempotent appends (bronze, silver, quarantine, DQ metrics) and gold upserts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from eventlake.observability.metrics import SINK_COMMIT

log = logging.getLogger(__name__)

#: Delta errors another writer's commit causes (OPTIMIZE next to a MERGE): the operation is correct
#: to retry on the new snapshot.
CONFLICTS = ("ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException")


def newest_commit(spark: SparkSession, path: str) -> tuple[int, bool]:
    """The version of the Delta table's newest commit, and whether that commit is the table's
    creation (then it holds no rows: tables are created empty, ``tables.create_table``)."""
    newest = DeltaTable.forPath(spark, path).history(1).select("version", "operation").head()
    assert newest is not None, "a Delta table has a version"
    return int(newest["version"]), newest["operation"] == "CREATE TABLE"


def retry_conflicts(what: str, action: Callable[[], object], attempts: int = 5) -> None:
    """Run ``action()``; on a Delta write conflict, run it again (up to ``attempts`` times)."""
    for attempt in range(1, attempts + 1):
        try:
            action()
            return
        except Exception as err:
            if attempt == attempts or not any(c in str(err) for c in CONFLICTS):
                raise
            log.warning(
                "delta write conflict; retrying", extra={"what": what, "attempt": attempt, "error": str(err)[:300]}
            )
            time.sleep(0.5 * attempt)


@dataclass(frozen=True)
class DeltaAppend:
    """Append a batch to the table at ``path`` once per ``(app_id, batch_id)``.

    Each commit carries ``userMetadata = eventlake:<app_id>:<batch_id>``. A batch that may have been
    written before (``replay=True``: a retry after a crash between this commit and Spark's checkpoint)
    is skipped if the table's recent history holds its marker. Why not Delta's ``txnAppId``/``txnVersion``:
    checking those reconstructs the table's set-transaction state with a Spark job on every commit
    (measured 1.56 s per 1,000-row append against 0.45 s without, growing with the log), while a
    replay is rare and the history lookup is cheap (0.16 s) and only done then.
    """

    path: str
    app_id: str
    target: str
    #: add columns a new schema version brings (silver follows the subject's latest schema)
    merge_schema: bool = False
    kind: str = "delta"
    #: how far back a replay looks for its marker (other writers' commits may sit in between)
    history: int = 200
    #: at most this many files per append (0: one per partition of the batch, e.g. per Kafka
    #: partition); fewer tasks and files per micro-batch, and a smaller Delta log to replay
    files: int = 0

    def marker(self, batch_id: int) -> str:
        return f"eventlake:{self.app_id}:{batch_id}"

    def committed(self, spark: SparkSession, batch_id: int) -> bool:
        """Whether this batch's append is in the table already."""
        if not DeltaTable.isDeltaTable(spark, self.path):
            return False
        recent = DeltaTable.forPath(spark, self.path).history(self.history).select("userMetadata")
        return recent.where(F.col("userMetadata") == self.marker(batch_id)).limit(1).count() > 0

    def write(self, batch: DataFrame, batch_id: int, *, replay: bool = True) -> None:
        if replay and self.committed(batch.sparkSession, batch_id):
            log.info("batch already appended; skipped", extra={"table": self.target, "batch_id": batch_id})
            return
        if self.files:
            batch = batch.coalesce(self.files)  # narrow: partitions are merged, nothing is shuffled
        with SINK_COMMIT.labels(self.kind, self.target).time():
            (
                batch.write.format("delta")
                .mode("append")
                .option("userMetadata", self.marker(batch_id))
                .option("mergeSchema", str(self.merge_schema).lower())
                .save(self.path)
            )


@dataclass
class DeltaUpsert:
    """MERGE a batch of exact gold rows into ``path`` on ``keys`` (update or insert).

    The rows carry recomputed values, not increments, so redoing a MERGE is harmless. The target is
    pruned to ``window_start >=`` the batch's oldest window: Delta skips every file of older windows
    by its min/max statistics, so the cost follows the batch, not the table's age.

    Into a table whose newest commit is its creation (no rows), the write is an append: a MERGE is a
    dozen Spark jobs whatever its size (measured on a fresh table, 2,000 rows: 1.9 s, an append
    0.47 s, the history look-up that tells them apart 0.24 s, once per sink). The pass is the only
    writer of gold, one query per table, so nothing can add rows between the look-up and the append;
    a replay of that batch finds the append and MERGEs (same values).
    """

    path: str
    keys: tuple[str, ...]
    target: str
    kind: str = "delta"
    #: the table is known to hold rows (or to have been written): every write from then on MERGEs
    _written: bool = field(default=False, init=False, repr=False, compare=False)

    def _empty(self, spark: SparkSession) -> bool:
        if not self._written:
            self._written = not newest_commit(spark, self.path)[1]
        return not self._written

    def write(self, batch: DataFrame, batch_id: int, *, replay: bool = True) -> None:
        # Computed once (windows aggregated from the open-window state): the prune bound, the MERGE's
        # search for touched files and its write each read the source.
        batch = batch.persist()
        try:
            lo = batch.agg({"window_start": "min"}).head()
            if lo is None or lo[0] is None:
                return
            cond = " AND ".join(f"t.{c} <=> s.{c}" for c in self.keys)
            prune = f"t.window_start >= timestamp'{lo[0].isoformat(sep=' ')}'"
            with SINK_COMMIT.labels(self.kind, self.target).time():
                if self._empty(batch.sparkSession):
                    batch.write.format("delta").mode("append").save(self.path)
                    self._written = True
                    return

                def merge() -> None:
                    table = DeltaTable.forPath(batch.sparkSession, self.path)
                    builder = table.alias("t").merge(batch.alias("s"), f"{prune} AND {cond}")
                    builder.whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()

                # The rows are recomputed values: a MERGE that lost to OPTIMIZE's commit is redone as is.
                retry_conflicts(f"merge {self.target}", merge)
        finally:
            batch.unpersist()
