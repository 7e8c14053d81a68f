"""Keep the lake and the bookkeeping small: Delta OPTIMIZE (+ Z-order) and VACUUM on every table,
and pruning of PostgreSQL bookkeeping rows past their retention.

Why it is safe next to a running stream:

- OPTIMIZE only rewrites files (``dataChange = false``); the stream's blind appends never conflict
  with it, and a gold MERGE that does is retried by the stream's sink (it recomputes the same rows).
  OPTIMIZE itself is retried when a concurrent MERGE removed a file it was compacting.
- VACUUM keeps every file removed less than ``batch.vacuum_retention_hours`` ago (at least Delta's
  7-day default): a batch replayed after a crash reads silver as of the version it first started
  from, which stays readable for that long.
- Stream bookkeeping keeps the newest batch of every query and, per Kafka partition, the row that
  holds its newest event time, so replay detection and the lateness horizon are unchanged.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from eventlake import pg
from eventlake.config import Settings
from eventlake.streaming.paths import table
from eventlake.streaming.sinks.delta import retry_conflicts
from eventlake.streaming.specs import GOLD_SPECS, ROLLUP_SPECS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LakeTable:
    name: str  # layer/name
    path: str
    zorder: tuple[str, ...]  # the column the jobs filter by (empty: compaction only)


def lake_tables(settings: Settings) -> list[LakeTable]:
    """Every Delta table the platform writes, with the column its readers filter on."""
    out = []
    for source in settings.topics.sources:
        out += [
            LakeTable(f"bronze/{source}", table(settings, "bronze", source), ("kafka_timestamp",)),
            LakeTable(f"silver/{source}", table(settings, "silver", source), ("event_time",)),
            LakeTable(f"quarantine/{source}", table(settings, "quarantine", source), ()),
        ]
    out.append(LakeTable("quality/metrics", table(settings, "quality", "metrics"), ("ts",)))
    for spec in (*GOLD_SPECS, *ROLLUP_SPECS):
        if spec.source in settings.topics.sources:
            out.append(LakeTable(f"gold/{spec.table}", table(settings, "gold", spec.table), ("window_start",)))
    return out


@dataclass(frozen=True)
class TableReport:
    table: str
    files_before: int
    bytes_before: int
    files_after: int
    bytes_after: int


def _size(spark: SparkSession, path: str) -> tuple[int, int]:
    row = DeltaTable.forPath(spark, path).detail().select("numFiles", "sizeInBytes").head()
    assert row is not None
    return int(row[0]), int(row[1])


def optimize_and_vacuum(spark: SparkSession, settings: Settings) -> list[TableReport]:
    """OPTIMIZE (Z-ordered where a column is given) and VACUUM every existing lake table; a table
    of one file is only vacuumed (nothing to compact)."""
    spark.conf.set("spark.databricks.delta.optimize.maxFileSize", str(settings.batch.optimize_target_file_mb << 20))
    # VACUUM lists the table's files with this many tasks (default 10,000: a minute per tiny table
    # on 2 cores); a few per core list a table of thousands of files just as fast.
    listing = max(8, 4 * spark.sparkContext.defaultParallelism)
    spark.conf.set("spark.sql.sources.parallelPartitionDiscovery.parallelism", str(listing))
    reports = []
    for t in lake_tables(settings):
        if not DeltaTable.isDeltaTable(spark, t.path):
            continue
        files, size = _size(spark, t.path)
        if files > 1:

            def optimize(t: LakeTable = t) -> None:
                builder = DeltaTable.forPath(spark, t.path).optimize()
                builder.executeZOrderBy(*t.zorder) if t.zorder else builder.executeCompaction()

            retry_conflicts(f"optimize {t.name}", optimize)
        DeltaTable.forPath(spark, t.path).vacuum(settings.batch.vacuum_retention_hours)
        after = _size(spark, t.path) if files > 1 else (files, size)
        log.info("table maintained", extra={"table": t.name, "files": f"{files} -> {after[0]}"})
        reports.append(TableReport(t.name, files, size, *after))
    return reports


@dataclass(frozen=True)
class PruneReport:
    table: str
    deleted: int


#: (table, DELETE statement); %(cutoff)s is the retention cutoff. Order matters: deliveries before alerts.
PRUNE: tuple[tuple[str, str], ...] = (
    ("dq_metrics", "DELETE FROM dq_metrics WHERE ts < %(cutoff)s"),
    ("dq_batches", "DELETE FROM dq_batches WHERE ts < %(cutoff)s"),
    ("dq_volume", "DELETE FROM dq_volume WHERE window_start < %(cutoff)s AND evaluated"),
    (
        "dq_alert_deliveries",
        "DELETE FROM dq_alert_deliveries WHERE status <> 'pending' AND created_at < %(cutoff)s",
    ),
    (
        "dq_alerts",
        "DELETE FROM dq_alerts a WHERE status = 'resolved' AND resolved_at < %(cutoff)s"
        " AND NOT EXISTS (SELECT 1 FROM dq_alert_deliveries d WHERE d.alert_id = a.id)",
    ),
    # Stream bookkeeping: batches that started before the cutoff, except each query's newest.
    (
        "eventlake_stream_watermarks",
        "DELETE FROM eventlake_stream_watermarks w USING eventlake_stream_batches b"
        " WHERE b.query = w.query AND b.batch_id = w.batch_id AND b.started_at < %(cutoff)s"
        " AND w.batch_id < (SELECT max(batch_id) FROM eventlake_stream_batches m WHERE m.query = w.query)"
        # the row holding a partition's newest event time stays: it is the partition's lateness horizon
        " AND (w.query, w.batch_id, w.kafka_partition) NOT IN ("
        "   SELECT DISTINCT ON (query, kafka_partition) query, batch_id, kafka_partition"
        "   FROM eventlake_stream_watermarks ORDER BY query, kafka_partition, max_event_time DESC, batch_id DESC)",
    ),
    (
        "eventlake_stream_gold",
        "DELETE FROM eventlake_stream_gold g USING eventlake_stream_batches b"
        " WHERE b.query = g.query AND b.batch_id = g.batch_id AND b.started_at < %(cutoff)s"
        # the newest row stays: how far Delta gold is merged (merged_through grows with the batch id)
        " AND g.batch_id < (SELECT max(batch_id) FROM eventlake_stream_gold m WHERE m.query = g.query)",
    ),
    (
        "eventlake_stream_dq",
        "DELETE FROM eventlake_stream_dq d USING eventlake_stream_batches b"
        " WHERE b.query = d.query AND b.batch_id = d.batch_id AND b.started_at < %(cutoff)s"
        # the newest row stays: the next export starts after it
        " AND d.batch_id < (SELECT max(batch_id) FROM eventlake_stream_dq m WHERE m.query = d.query)",
    ),
    (
        "eventlake_stream_commits",
        "DELETE FROM eventlake_stream_commits c WHERE committed_at < %(cutoff)s"
        " AND batch_id < (SELECT max(batch_id) FROM eventlake_stream_commits m WHERE m.query = c.query)",
    ),
    (
        "eventlake_stream_batches",
        "DELETE FROM eventlake_stream_batches b WHERE started_at < %(cutoff)s"
        " AND batch_id < (SELECT max(batch_id) FROM eventlake_stream_batches m WHERE m.query = b.query)"
        " AND NOT EXISTS (SELECT 1 FROM eventlake_stream_watermarks w"
        "   WHERE w.query = b.query AND w.batch_id = b.batch_id)",
    ),
)


def prune_bookkeeping(url: str, settings: Settings, now: dt.datetime | None = None) -> list[PruneReport]:
    """Delete bookkeeping rows older than ``batch.bookkeeping_retention_days`` (one transaction)."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=settings.batch.bookkeeping_retention_days)
    out = []
    with pg.connect(url, answer_timeout_s=pg.BATCH_ANSWER_TIMEOUT_S) as conn, conn.transaction():
        existing = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        for name, statement in PRUNE:
            if name in existing:
                out.append(PruneReport(name, conn.execute(statement, {"cutoff": cutoff}).rowcount))
    log.info("bookkeeping pruned", extra={"cutoff": cutoff.isoformat(), "deleted": {r.table: r.deleted for r in out}})
    return out
