"""Delta Lake sinks: idempotent appends (bronze, silver, quarantine, DQ metrics) and gold upserts."""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame

from eventlake.observability.metrics import SINK_COMMIT


@dataclass(frozen=True)
class DeltaAppend:
    """Append a batch to the table at ``path`` once per ``(app_id, batch_id)``.

    Delta records ``txnAppId``/``txnVersion`` in the commit and skips a write whose version it has
    seen for that app id, so a batch replayed after a crash (Delta committed, Spark's checkpoint not)
    appends nothing twice.
    """

    path: str
    app_id: str
    target: str
    #: add columns a new schema version brings (silver follows the subject's latest schema)
    merge_schema: bool = False
    kind: str = "delta"

    def write(self, batch: DataFrame, batch_id: int) -> None:
        with SINK_COMMIT.labels(self.kind, self.target).time():
            (
                batch.write.format("delta")
                .mode("append")
                .option("txnAppId", self.app_id)
                .option("txnVersion", batch_id)
                .option("mergeSchema", str(self.merge_schema).lower())
                .save(self.path)
            )


@dataclass(frozen=True)
class DeltaUpsert:
    """MERGE a batch of exact gold rows into ``path`` on ``keys`` (update or insert).

    The rows carry recomputed values, not increments, so redoing a MERGE is harmless. The target is
    pruned to ``window_start >=`` the batch's oldest window: Delta skips every file of older windows
    by its min/max statistics, so the cost follows the batch, not the table's age.
    """

    path: str
    keys: tuple[str, ...]
    target: str
    kind: str = "delta"

    def write(self, batch: DataFrame, batch_id: int) -> None:
        lo = batch.agg({"window_start": "min"}).head()
        if lo is None or lo[0] is None:
            return
        cond = " AND ".join(f"t.{c} <=> s.{c}" for c in self.keys)
        prune = f"t.window_start >= timestamp'{lo[0].isoformat(sep=' ')}'"
        with SINK_COMMIT.labels(self.kind, self.target).time():
            table = DeltaTable.forPath(batch.sparkSession, self.path)
            merge = table.alias("t").merge(batch.alias("s"), f"{prune} AND {cond}")
            merge.whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
