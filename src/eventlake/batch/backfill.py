"""Rebuild silver and gold of a date range from bronze, the replayable record of what Kafka held.

Bronze rows go through the streaming path's own functions (``silver.decode``, ``check``, ``late``,
``first_per_event_id`` and ``gold.aggregate``), so the result equals what the stream wrote for the
same records. Why a range can be rebuilt alone:

- Lateness: a record is late against the newest valid event before it in its Kafka partition.
  Records stored more than ``max_future_skew_s`` before the range starts carry event times before
  it (later ones were quarantined as ``future``), so they cannot make a record of the range late;
  bronze is read from there on, in Kafka order.
- Duplicates share an ``event_id`` and an event time, so they fall in the same range.

Writes replace the range and nothing else: silver rows with ``from <= event_time < to`` (one Delta
``replaceWhere`` commit), then every gold window that range's events fall in (sliding windows that
start before ``from`` included), in Delta and PostgreSQL. A rerun leaves the same tables. Quarantine
and DQ results are not rewritten (the stream recorded them).

Rebuild only a range no stream writes any more: its end must be behind the lateness horizon and
the longest window (``force`` skips this check, for a stopped stream or a test).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from eventlake.batch.days import Days
from eventlake.batch.writes import replace_range, silver_between, write_gold
from eventlake.config import Settings
from eventlake.errors import EventlakeError
from eventlake.quality.rules import load_quality
from eventlake.streaming import silver as sv
from eventlake.streaming.gold import aggregate
from eventlake.streaming.paths import table
from eventlake.streaming.schemas import SchemaCache
from eventlake.streaming.specs import (
    SPECS_BY_SOURCE,
    GoldSpec,
    longest_window_minutes,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackfillResult:
    source: str
    days: str
    silver_rows: int
    gold_rows: dict[str, int]


def rebuilt_silver(spark: SparkSession, settings: Settings, registry_url: str, source: str, days: Days) -> DataFrame:
    """The silver rows of ``source`` with event times in ``days``, computed from bronze."""
    stream = settings.streaming
    since = days.start - dt.timedelta(seconds=stream.max_future_skew_s + 60)
    bronze = (
        spark.read.format("delta")
        .load(table(settings, "bronze", source))
        .where(F.col("kafka_timestamp") >= F.lit(since))
    )
    schemas = SchemaCache(registry_url, f"{settings.topics.raw(source)}-value")
    writers = schemas.subject_writers()
    rules = load_quality(settings).source(source)
    checked = sv.check(
        sv.decode(sv.with_schema_id(bronze), writers, schemas.reader),
        rules,
        list(writers),
        schemas.reader,
        future_skew_s=stream.max_future_skew_s,
    )
    classified = sv.late(checked, prior={}, lateness_s=stream.allowed_lateness_s)
    t = F.col("_rec.event_time")
    valid = classified.where(F.col("_reason").isNull() & (t >= F.lit(days.start)) & (t < F.lit(days.end)))
    return sv.first_per_event_id(valid)


def require_final(settings: Settings, days: Days, sources: tuple[str, ...], now: dt.datetime | None = None) -> None:
    """Raise unless the stream can no longer change any window of ``days`` (their end is behind the
    lateness horizon and the longest window) for every source."""
    for source in sources:
        horizon = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(
            seconds=settings.streaming.allowed_lateness_s, minutes=longest_window_minutes(source)
        )
        if days.end > horizon:
            raise EventlakeError(
                f"{days} is not final yet for {source}: the stream may still change windows"
                f" after {horizon:%Y-%m-%d %H:%M} UTC",
                "backfill a range that ended before the lateness horizon, or pass --force with the stream stopped",
            )


def backfill(
    spark: SparkSession,
    settings: Settings,
    postgres_url: str,
    registry_url: str,
    days: Days,
    *,
    sources: tuple[str, ...] | None = None,
    force: bool = False,
    now: dt.datetime | None = None,
) -> list[BackfillResult]:
    """Rebuild silver and gold of ``days`` for ``sources`` (default: all) from bronze."""
    sources = sources or settings.topics.sources
    if not force:
        require_final(settings, days, sources, now)
    results = []
    for source in sources:
        silver_path = table(settings, "silver", source)
        rows = rebuilt_silver(spark, settings, registry_url, source, days).cache()
        try:
            n = rows.count()
            replace_range(rows, silver_path, "event_time", days.start, days.end, merge_schema=True)
        finally:
            rows.unpersist()
        gold = {spec.table: _gold(spark, settings, postgres_url, spec, days) for spec in SPECS_BY_SOURCE[source]}
        log.info("backfilled", extra={"source": source, "days": str(days), "silver": n, "gold": gold})
        results.append(BackfillResult(source, str(days), n, gold))
    return results


def _gold(spark: SparkSession, settings: Settings, postgres_url: str, spec: GoldSpec, days: Days) -> int:
    """Recompute every window of ``spec`` that an event of ``days`` falls in, from silver."""
    lo = days.start - dt.timedelta(minutes=spec.window_minutes - spec.slide_minutes)
    hi = days.end
    silver = silver_between(spark, settings, spec.source, lo, hi + dt.timedelta(minutes=spec.window_minutes))
    windows = aggregate(silver, spec).where((F.col("window_start") >= F.lit(lo)) & (F.col("window_start") < F.lit(hi)))
    return write_gold(spark, settings, postgres_url, spec, windows, lo=lo, hi=hi)
