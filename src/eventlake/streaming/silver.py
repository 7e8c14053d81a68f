"""Silver: decode, validate, de-duplicate; the rest goes to quarantine and the DLQ with a reason.

Per micro-batch of bronze rows (``foreachBatch``):

1. **Decode** the Confluent wire format in the JVM: magic byte 0, 4-byte schema id, Avro body
   (``from_avro`` with the writer schema of that id and the subject's latest schema as reader, so
   several schema versions in one topic land in one shape; a new version mid-stream just works).
2. **Validate** required fields (non-null) and ranges from ``sources.required``/``sources.ranges``.
3. **Late**: an event is late if it is older than the newest event seen before it *in the same
   Kafka partition* minus ``streaming.allowed_lateness_s``. Deterministic whatever the batch
   boundaries, and replay-safe (the previous batches' maxima are stored per batch id).
4. **De-duplicate** by ``event_id``: first occurrence in the batch, then an insert-only MERGE into
   ``silver/<source>`` (a later duplicate of an event already in silver is dropped too). Replaying a
   batch inserts nothing twice: silver is exactly-once.
5. Everything invalid is appended to ``quarantine/<source>`` (idempotent: ``txnAppId``/``txnVersion``)
   with the original bytes and a reason, and sent to ``dlq.<source>`` with an ``eventlake-reason``
   header. The DLQ topic is at-least-once: a replayed batch re-sends; consumers de-duplicate on the
   ``eventlake-source-offset`` header.

Reasons: ``not_wire_format``, ``unknown_schema_id``, ``undecodable``, ``null_required:<field>``,
``out_of_range:<field>``, ``late``. Duplicates are counted, not quarantined.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, Row, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro
from pyspark.sql.streaming.query import StreamingQuery

from eventlake.config import Settings
from eventlake.observability.metrics import (
    DQ_CHECKED,
    DQ_FAILED,
    SINK_COMMIT,
    SINK_ROWS,
    STREAM_WATERMARK_DELAY,
)
from eventlake.quality import checks
from eventlake.quality.rules import SourceRules
from eventlake.quality.store import DECODE, LATE, METRICS_SCHEMA, BatchFacts, Metric, StoredMetric, record_batch
from eventlake.streaming.paths import checkpoint, table, with_trigger
from eventlake.streaming.schemas import SchemaCache
from eventlake.streaming.state import save_watermarks, watermarks_before

log = logging.getLogger(__name__)


@dataclass
class SilverCounts:
    """What one source's silver query did so far (per process)."""

    input: int = 0
    valid: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)

    def add(self, input_rows: int, valid: int, duplicates: int) -> None:
        self.input += input_rows
        self.valid += valid
        self.duplicates += duplicates


DECODE_REASONS = ("not_wire_format", "unknown_schema_id", "undecodable")


def _reason(rules: SourceRules, known_ids: list[int]) -> Column:
    """The first reason a row is invalid: decoding, then the critical row rules in order."""
    rule = F.when(
        (F.length("value") < 5) | (F.hex(F.expr("substring(value, 1, 1)")) != "00"), F.lit("not_wire_format")
    ).when(~F.col("_schema_id").isin(known_ids) if known_ids else F.lit(True), F.lit("unknown_schema_id"))
    rule = rule.when(F.col("_rec").isNull(), F.lit("undecodable"))
    for r in rules.row:
        if r.severity == "critical":
            rule = rule.when(checks.failed(r), F.lit(r.rule_name))
    return rule


def _optional_fields(reader: str) -> list[str]:
    """Top-level nullable fields of the reader schema (schema drift watches them stop arriving)."""
    return [f["name"] for f in json.loads(reader)["fields"] if isinstance(f["type"], list) and "null" in f["type"]]


def _batch_stats(classified: DataFrame, rules: SourceRules, optional: list[str]) -> list[Row]:
    """One Spark job: per Kafka partition and volume window, every count the batch needs."""
    reason = F.col("_reason")
    decoded = reason.isNull() | ~reason.isin(*DECODE_REASONS)
    valid = reason.isNull()
    volume = rules.of_type("volume")
    window = F.lit(None).cast("timestamp")
    if volume:
        w = volume[0].window_s
        seconds = F.unix_timestamp(F.col("_rec.event_time"))
        window = F.when(valid, F.timestamp_seconds((seconds / w).cast("bigint") * w))
    aggs = [
        F.count("*").alias("n_in"),
        F.count_if(decoded).alias("n_decoded"),
        F.count_if(valid).alias("n"),
        F.count_if(reason == "late").alias("n_late"),
        F.max(F.when(valid, F.col("_rec.event_time"))).alias("m"),
    ]
    aggs += [F.count_if(decoded & checks.failed(r)).alias(f"f{i}") for i, r in enumerate(rules.row)]
    aggs += [F.count_if(valid & F.col(f"_rec.{f}").isNotNull()).alias(f"nn{j}") for j, f in enumerate(optional)]
    return classified.groupBy("partition", window.alias("_vw")).agg(*aggs).collect()


def _utc(t: dt.datetime) -> dt.datetime:
    """Aware UTC. pyspark's collect gives naive datetimes in the process's local time zone."""
    return t.astimezone(dt.UTC)


def _maxima(stats: list[Row]) -> dict[int, dt.datetime]:
    """Newest valid event time per Kafka partition."""
    out: dict[int, dt.datetime] = {}
    for r in stats:
        if r["m"] is not None:
            m = _utc(r["m"])
            out[r["partition"]] = max(m, out.get(r["partition"], m))
    return out


def _facts(
    stats: list[Row],
    rules: SourceRules,
    optional: list[str],
    *,
    maxima: dict[int, dt.datetime],
    prior: dict[int, dt.datetime],
    ids: list[int],
    dupes: int,
) -> BatchFacts:
    def total(col: str) -> int:
        return sum(int(r[col]) for r in stats)

    n_in, n_decoded, n, n_late = total("n_in"), total("n_decoded"), total("n"), total("n_late")
    metrics = [Metric(DECODE, n_in, n_in - n_decoded)]
    metrics += [Metric(r.rule_name, n_decoded, total(f"f{i}")) for i, r in enumerate(rules.row)]
    metrics.append(Metric(LATE, n + n_late, n_late))
    metrics += [Metric(r.rule_name, n, dupes) for r in rules.of_type("unique")]
    newest = max(maxima.values(), default=None)
    for r in rules.of_type("freshness"):
        if newest is None:
            metrics.append(Metric(r.rule_name, 0, 0))
            continue
        lag = (dt.datetime.now(dt.UTC) - newest).total_seconds()
        detail = f"newest event {lag:.0f} s behind now, allowed {r.max_lag_s:g} s"
        metrics.append(Metric(r.rule_name, 1, int(lag > r.max_lag_s), detail if lag > r.max_lag_s else ""))
    windows: dict[dt.datetime, int] = {}
    for r in stats:
        if r["_vw"] is not None and r["n"]:
            ws = _utc(r["_vw"])
            windows[ws] = windows.get(ws, 0) + int(r["n"])
    seen = [_utc(t) for t in prior.values()] + ([newest] if newest is not None else [])
    return BatchFacts(
        metrics=metrics,
        windows=windows,
        watermark=max(seen, default=None),
        schema_ids=ids,
        non_null={f: total(f"nn{j}") for j, f in enumerate(optional)},
        valid=n,
    )


def make_silver_batch(
    spark: SparkSession,
    settings: Settings,
    source: str,
    *,
    bootstrap: str,
    registry_url: str,
    postgres_url: str,
    counts: SilverCounts,
    rules: SourceRules,
) -> Callable[[DataFrame, int], None]:
    """The ``foreachBatch`` function of one source's silver query."""
    name = f"silver_{source}"
    schemas = SchemaCache(registry_url, f"{settings.topics.raw(source)}-value")
    silver_path = table(settings, "silver", source)
    quarantine_path = table(settings, "quarantine", source)
    lateness = settings.streaming.allowed_lateness_s
    version: list[int | None] = [None]  # the silver table's version after this query's last MERGE

    def process(batch: DataFrame, batch_id: int) -> None:
        batch = batch.withColumn(
            "_schema_id",
            F.when(
                (F.length("value") >= 5) & (F.hex(F.expr("substring(value, 1, 1)")) == "00"),
                F.conv(F.hex(F.expr("substring(value, 2, 4)")), 16, 10).cast("bigint"),
            ),
        ).persist()
        classified: DataFrame | None = None
        try:
            reader = schemas.latest()
            ids = [r[0] for r in batch.select("_schema_id").distinct().collect() if r[0] is not None]
            writers = {i: w for i in ids if (w := schemas.writer(i)) is not None}
            known = list(writers)
            payload = F.expr("substring(value, 6, length(value) - 5)")
            branches = [
                F.when(F.col("_schema_id") == i, from_avro(payload, w, {"mode": "PERMISSIVE", "avroSchema": reader}))
                for i, w in writers.items()
            ]
            # No decodable id in this batch: still a (null) struct of the reader's shape.
            none = from_avro(F.lit(None).cast("binary"), reader)
            decoded = batch.withColumn("_rec", F.coalesce(*branches, none))
            checked = decoded.withColumn("_reason", _reason(rules, known))
            # Late: compare with the newest earlier event of the same partition (this and past batches).
            prior = watermarks_before(postgres_url, name, batch_id)
            prior_col = F.lit(None).cast("timestamp")
            for p, t in prior.items():
                prior_col = F.when(F.col("partition") == p, F.lit(t)).otherwise(prior_col)
            earlier = Window.partitionBy("partition").orderBy("offset").rowsBetween(Window.unboundedPreceding, -1)
            ok = checked.where(F.col("_reason").isNull())
            ok = ok.withColumn("_newest", F.greatest(F.max("_rec.event_time").over(earlier), prior_col))
            ok = ok.withColumn(
                "_reason",
                F.when(
                    F.col("_rec.event_time") < F.col("_newest") - F.expr(f"INTERVAL {lateness} SECONDS"), F.lit("late")
                ),
            ).drop("_newest")
            classified = checked.where(F.col("_reason").isNotNull()).unionByName(ok).persist()
            optional = _optional_fields(reader) if rules.of_type("schema_drift") else []
            stats = _batch_stats(classified, rules, optional)
            quarantined = _write_quarantine(
                classified.where(F.col("_reason").isNotNull()),
                settings,
                source,
                path=quarantine_path,
                query=name,
                batch_id=batch_id,
                bootstrap=bootstrap,
                counts=counts,
            )
            valid = classified.where(F.col("_reason").isNull())
            first = Window.partitionBy("_rec.event_id").orderBy("partition", "offset")
            unique = (
                valid.withColumn("_n", F.row_number().over(first))
                .where("_n = 1")
                .select(
                    "_rec.*",
                    F.col("partition").alias("_kafka_partition"),
                    F.col("offset").alias("_kafka_offset"),
                    F.col("_schema_id"),
                )
            )
            n_valid = sum(int(r["n"]) for r in stats)
            inserted = 0
            if n_valid:
                with SINK_COMMIT.labels("delta", f"silver/{source}").time():
                    inserted, version[0] = _merge_insert(spark, unique, silver_path, version[0])
                SINK_ROWS.labels("delta", f"silver/{source}").inc(inserted)
            save_watermarks(postgres_url, name, batch_id, (maxima := _maxima(stats)).items())
            facts = _facts(stats, rules, optional, maxima=maxima, prior=prior, ids=ids, dupes=n_valid - inserted)
            _record_quality(
                spark, settings, rules, postgres_url=postgres_url, query=name, batch_id=batch_id, facts=facts
            )
            counts.add(n_valid + quarantined, inserted, n_valid - inserted)
            log.info(
                "silver batch",
                extra={"query": name, "batch_id": batch_id, "inserted": inserted, "duplicates": n_valid - inserted},
            )
        finally:
            if classified is not None:
                classified.unpersist()
            batch.unpersist()

    return process


def _record_quality(
    spark: SparkSession,
    settings: Settings,
    rules: SourceRules,
    *,
    postgres_url: str,
    query: str,
    batch_id: int,
    facts: BatchFacts,
) -> None:
    """DQ results of the batch: PostgreSQL (and alerts), Delta ``quality/metrics``, Prometheus."""
    source = rules.source
    metrics = record_batch(postgres_url, settings, rules, batch_id, facts)
    path = table(settings, "quality", "metrics")
    _write_metrics(spark, path, query=query, source=source, batch_id=batch_id, metrics=metrics)
    for m in metrics:
        DQ_CHECKED.labels(source, m.rule).inc(m.checked)
        DQ_FAILED.labels(source, m.rule).inc(m.failed)
    if facts.watermark is not None:
        # silver's event-time watermark: the newest event minus the allowed lateness
        lateness = dt.timedelta(seconds=settings.streaming.allowed_lateness_s)
        STREAM_WATERMARK_DELAY.labels(query).set((dt.datetime.now(dt.UTC) - facts.watermark + lateness).total_seconds())


def _write_metrics(
    spark: SparkSession, path: str, *, query: str, source: str, batch_id: int, metrics: list[StoredMetric]
) -> None:
    """Append the batch's DQ metrics to Delta ``quality/metrics``, once per batch id."""
    rows = [(m.ts, source, m.rule, m.checked, m.failed, batch_id, m.severity) for m in metrics]
    (
        spark.createDataFrame(rows, METRICS_SCHEMA)
        .write.format("delta")
        .mode("append")
        .option("txnAppId", f"{query}_dq")
        .option("txnVersion", batch_id)
        .save(path)
    )


def _merge_insert(spark: SparkSession, rows: DataFrame, path: str, known: int | None) -> tuple[int, int]:
    """Insert rows whose event_id is not in the table yet; returns (rows inserted, table version).

    ``known`` is the table's version before the MERGE (None: read it). A MERGE that changes nothing
    (every row a duplicate) may commit no version; then the newest history entry is an older
    MERGE's and its insert count must not be taken. The table exists already (``ensure_tables``).
    """
    target = DeltaTable.forPath(spark, path)
    if known is None:
        known = int(target.history(1).select("version").collect()[0][0])
    (
        target.alias("t")
        .merge(rows.alias("s"), "t.event_id = s.event_id")
        .whenNotMatchedInsertAll()
        .withSchemaEvolution()
        .execute()
    )
    version, metrics = target.history(1).select("version", "operationMetrics").collect()[0]
    if int(version) == known:
        return 0, known
    return int((metrics or {}).get("numTargetRowsInserted", 0)), int(version)


def _write_quarantine(
    bad: DataFrame,
    settings: Settings,
    source: str,
    *,
    path: str,
    query: str,
    batch_id: int,
    bootstrap: str,
    counts: SilverCounts,
) -> int:
    """Append ``bad`` to quarantine and the DLQ; returns how many rows that was."""
    rows = bad.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "_schema_id",
        F.col("_reason").alias("reason"),
        F.current_timestamp().alias("quarantined_at"),
    ).persist()
    try:
        if rows.isEmpty():
            return 0
        (
            rows.write.format("delta")
            .mode("append")
            .option("txnAppId", f"{query}_quarantine")
            .option("txnVersion", batch_id)
            .save(path)
        )
        by_reason = {r["reason"]: int(r["count"]) for r in rows.groupBy("reason").count().collect()}
        SINK_ROWS.labels("delta", f"quarantine/{source}").inc(sum(by_reason.values()))
        for reason, n in by_reason.items():
            counts.quarantined[reason] = counts.quarantined.get(reason, 0) + n
        headers = F.array(
            F.struct(F.lit("eventlake-reason").alias("key"), F.col("reason").cast("binary").alias("value")),
            F.struct(
                F.lit("eventlake-source-offset").alias("key"),
                F.concat_ws(":", "topic", "partition", "offset").cast("binary").alias("value"),
            ),
        )
        (
            rows.select("key", "value", headers.alias("headers"))
            .write.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("topic", settings.topics.dlq(source))
            .save()
        )
        SINK_ROWS.labels("kafka", settings.topics.dlq(source)).inc(sum(by_reason.values()))
        return sum(by_reason.values())
    finally:
        rows.unpersist()


def start_silver(
    spark: SparkSession,
    settings: Settings,
    source: str,
    *,
    bootstrap: str,
    registry_url: str,
    postgres_url: str,
    until_idle: bool,
    counts: SilverCounts,
    rules: SourceRules,
) -> StreamingQuery:
    name = f"silver_{source}"
    process = make_silver_batch(
        spark,
        settings,
        source,
        bootstrap=bootstrap,
        registry_url=registry_url,
        postgres_url=postgres_url,
        counts=counts,
        rules=rules,
    )
    stream = spark.readStream.format("delta").load(table(settings, "bronze", source))
    writer = (
        stream.writeStream.queryName(name)
        .foreachBatch(process)
        .option("checkpointLocation", checkpoint(settings, name))
    )
    writer = with_trigger(writer, settings, until_idle=until_idle)
    return writer.start()
