"""Hourly and daily rollups of the gold tables, per logical date, into PostgreSQL and Delta.

``gold_<x>_1h`` and ``gold_<x>_1d`` carry the keys and aggregates of ``gold_<x>_1m`` over longer
tumbling windows. They are computed from silver (the de-duplicated valid events), not by adding up
1-minute rows, so distinct users and p95 stay exact. A run replaces the day's rows in both stores
(one PostgreSQL transaction, one Delta ``replaceWhere`` commit per table): rerunning a day, or
running it again after a backfill changed silver, gives the rows one run on the final data gives.

Run it for a day once that day's windows are final (the day's end is behind the streaming
lateness horizon); the ``daily_rollups`` DAG runs after the day ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from eventlake.batch.days import Days
from eventlake.batch.writes import silver_between, write_gold
from eventlake.config import Settings
from eventlake.streaming.gold import aggregate
from eventlake.streaming.paths import table
from eventlake.streaming.specs import ROLLUP_SPECS, GoldSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollupResult:
    table: str
    days: str
    rows: int


def rollups(
    spark: SparkSession, settings: Settings, postgres_url: str, days: Days, specs: tuple[GoldSpec, ...] = ROLLUP_SPECS
) -> list[RollupResult]:
    """Compute and store every rollup table for ``days``; one result per table."""
    results = []
    for spec in specs:
        if spec.source not in settings.topics.sources:
            continue
        silver = table(settings, "silver", spec.source)
        if not DeltaTable.isDeltaTable(spark, silver):
            log.warning("no silver table; rollup skipped", extra={"table": spec.table, "silver": silver})
            continue
        rows = silver_between(spark, settings, spec.source, days.start, days.end)
        written = write_gold(spark, settings, postgres_url, spec, aggregate(rows, spec), lo=days.start, hi=days.end)
        log.info("rollup written", extra={"table": spec.table, "days": str(days), "rows": written})
        results.append(RollupResult(spec.table, str(days), written))
    return results
