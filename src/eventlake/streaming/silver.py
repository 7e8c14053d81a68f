"""Silver rules: decode, validate, judge event time; what is invalid gets a reason.

Applied by the one-pass query (``pipeline.py``) to each micro-batch of Kafka records:

1. **Decode** the Confluent wire format in the JVM: magic byte 0, 4-byte schema id, Avro body
   (``from_avro`` with the writer schema of that id and the subject's latest schema as reader, so
   several schema versions in one topic land in one shape; a new version mid-stream just works).
2. **Validate** with the critical row rules of the rules file (required fields, ranges, ...).
3. **Future**: an event dated more than ``streaming.max_future_skew_s`` after its Kafka timestamp
   (the broker's or producer's clock) is quarantined; it never moves a lateness horizon, so one
   device whose clock runs fast (or a record dated a year ahead) cannot make its partition's later
   records late.
4. **Late**: an event is late if it is older than the newest valid event seen before it *in the same
   Kafka partition* minus ``streaming.allowed_lateness_s``. Deterministic whatever the batch
   boundaries, and replay-safe (the previous batches' maxima are stored per batch id).

Reasons: ``not_wire_format``, ``unknown_schema_id``, ``undecodable``, the critical rule names
(``null_required:<field>``, ``out_of_range:<field>``, ...), ``future``, ``late``. Duplicates
(``event_id`` seen before, within the lateness horizon) are counted, not quarantined.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro

from eventlake.quality import checks
from eventlake.quality.rules import SourceRules
from eventlake.quality.store import DECODE, FUTURE, LATE, BatchFacts, Metric


@dataclass
class SilverCounts:
    """What one source's pass did so far (per process)."""

    input: int = 0
    valid: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)

    def add(self, input_rows: int, valid: int, duplicates: int, quarantined: dict[str, int]) -> None:
        self.input += input_rows
        self.valid += valid
        self.duplicates += duplicates
        for reason, n in quarantined.items():
            self.quarantined[reason] = self.quarantined.get(reason, 0) + n


DECODE_REASONS = ("not_wire_format", "unknown_schema_id", "undecodable")


def _wire() -> Column:
    """True where the value starts like the Confluent wire format (a function: columns need a session)."""
    return (F.length("value") >= 5) & (F.hex(F.expr("substring(value, 1, 1)")) == "00")


def with_schema_id(batch: DataFrame) -> DataFrame:
    """Add ``_schema_id`` (bigint: the 4 bytes overflow an int under ANSI), null when not wire format."""
    return batch.withColumn(
        "_schema_id", F.when(_wire(), F.conv(F.hex(F.expr("substring(value, 2, 4)")), 16, 10).cast("bigint"))
    )


def decode(batch: DataFrame, writers: dict[int, str], reader: str) -> DataFrame:
    """Add ``_rec``: the value decoded with its writer schema into the reader's shape (null if it fails)."""
    payload = F.expr("substring(value, 6, length(value) - 5)")
    branches = [
        F.when(F.col("_schema_id") == i, from_avro(payload, w, {"mode": "PERMISSIVE", "avroSchema": reader}))
        for i, w in writers.items()
    ]
    # No decodable id in this batch: still a (null) struct of the reader's shape.
    none = from_avro(F.lit(None).cast("binary"), reader)
    return batch.withColumn("_rec", F.coalesce(*branches, none))


def _reason(rules: SourceRules, known_ids: list[int], required: list[str], future_skew_s: int) -> Column:
    """The first reason a row is invalid: decoding, the critical row rules in order, then the future.

    ``from_avro`` in PERMISSIVE mode gives a malformed body a struct whose fields are all null, not a
    null struct; a field the reader schema declares non-null can be null only then."""
    rule = F.when(~_wire(), F.lit("not_wire_format")).when(
        ~F.col("_schema_id").isin(known_ids) if known_ids else F.lit(True), F.lit("unknown_schema_id")
    )
    malformed = F.col("_rec").isNull()
    for name in required:
        malformed |= F.col(f"_rec.{name}").isNull()
    rule = rule.when(malformed, F.lit("undecodable"))
    for r in rules.row:
        if r.severity == "critical":
            rule = rule.when(checks.failed(r), F.lit(r.rule_name))
    ahead = F.col("kafka_timestamp") + F.expr(f"INTERVAL {future_skew_s} SECONDS")
    return rule.when(F.col("_rec.event_time") > ahead, F.lit(FUTURE))


def check(
    decoded: DataFrame, rules: SourceRules, known_ids: list[int], reader: str, *, future_skew_s: int
) -> DataFrame:
    """Add ``_reason``: decoding, the critical row rules, the future (everything but lateness).
    Persist the result: :func:`late` reads it twice, and decoding twice costs more than caching."""
    optional = set(optional_fields(reader))
    required = [f["name"] for f in json.loads(reader)["fields"] if f["name"] not in optional]
    return decoded.withColumn("_reason", _reason(rules, known_ids, required, future_skew_s))


#: A Kafka record's identity within one topic: what the narrow decisions below key on.
KEY = ("partition", "offset")


def late_keys(checked: DataFrame, *, prior: dict[int, dt.datetime], lateness_s: int) -> DataFrame:
    """``KEY`` of the valid rows of ``checked`` that are late.

    ``prior``: newest valid event time per Kafka partition before this batch. A row is late if it is
    older than the newest of the earlier rows minus ``lateness_s``; the running maximum may include
    the row itself (a row is never older than itself minus the lateness), which lets Spark use its
    running-frame window instead of re-scanning a shrinking frame per row. The window's shuffle and
    sort move three narrow columns, not the records (which carry their bytes and decoded fields).
    """
    prior_col = F.lit(None).cast("timestamp")
    for p, t in prior.items():
        prior_col = F.when(F.col("partition") == p, F.lit(t)).otherwise(prior_col)
    upto = Window.partitionBy("partition").orderBy("offset").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    ok = checked.where(F.col("_reason").isNull()).select(*KEY, F.col("_rec.event_time").alias("_t"))
    ok = ok.withColumn("_newest", F.greatest(F.max("_t").over(upto), prior_col))
    return ok.where(F.col("_t") < F.col("_newest") - F.expr(f"INTERVAL {lateness_s} SECONDS")).select(*KEY)


def mark_late(checked: DataFrame, keys: DataFrame) -> DataFrame:
    """``checked`` with ``_reason`` set to ``late`` on the rows of ``keys`` (a broadcast lookup: late
    rows are few, and the records are never shuffled)."""
    late_rows = F.broadcast(keys.withColumn("_late", F.lit(True)))
    marked = checked.join(late_rows, list(KEY), "left")
    return marked.withColumn(
        "_reason", F.when(F.col("_late").isNotNull(), F.lit(LATE)).otherwise(F.col("_reason"))
    ).drop("_late")


def late(checked: DataFrame, *, prior: dict[int, dt.datetime], lateness_s: int) -> DataFrame:
    """Set ``_reason`` to ``late`` on the valid rows of ``checked`` that are late (null: valid); see
    :func:`late_keys`."""
    return mark_late(checked, late_keys(checked, prior=prior, lateness_s=lateness_s))


def optional_fields(reader: str) -> list[str]:
    """Top-level nullable fields of the reader schema (schema drift watches them stop arriving)."""
    return [f["name"] for f in json.loads(reader)["fields"] if isinstance(f["type"], list) and "null" in f["type"]]


@dataclass(frozen=True)
class BatchStats:
    """Every count of one classified batch, from one Spark job (a few rows per partition and minute)."""

    rows: list[Row]

    @staticmethod
    def of(classified: DataFrame, rules: SourceRules, optional: list[str]) -> BatchStats:
        reason = F.col("_reason")
        decoded = reason.isNull() | ~reason.isin(*DECODE_REASONS)
        valid = reason.isNull()
        t = F.col("_rec.event_time")
        volume = rules.of_type("volume")
        window = F.lit(None).cast("timestamp")
        if volume:
            w = volume[0].window_s
            window = F.when(valid, F.timestamp_seconds((F.unix_timestamp(t) / w).cast("bigint") * w))
        aggs = [
            F.count("*").alias("n_in"),
            F.count_if(decoded).alias("n_decoded"),
            F.count_if(valid).alias("n"),
            F.max(F.when(valid, t)).alias("m"),
            F.min(F.when(valid, t)).alias("lo"),
            F.min(F.when(valid, F.col("offset"))).alias("o_lo"),
            F.max(F.when(valid, F.col("offset"))).alias("o_hi"),
            F.max("offset").alias("o_end"),
            F.collect_set(F.when(decoded, F.col("_schema_id"))).alias("ids"),
        ]
        aggs += [F.count_if(decoded & checks.failed(r)).alias(f"f{i}") for i, r in enumerate(rules.row)]
        aggs += [F.count_if(valid & F.col(f"_rec.{f}").isNotNull()).alias(f"nn{j}") for j, f in enumerate(optional)]
        minute = F.when(valid, F.date_trunc("minute", t))
        keys = [F.col("partition"), window.alias("_vw"), minute.alias("_minute"), reason]
        return BatchStats(classified.groupBy(*keys).agg(*aggs).collect())

    def total(self, col: str) -> int:
        return sum(int(r[col]) for r in self.rows)

    @property
    def valid(self) -> int:
        return self.total("n")

    @property
    def quarantined(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            if r["_reason"] is not None:
                out[r["_reason"]] = out.get(r["_reason"], 0) + int(r["n_in"])
        return out

    def maxima(self) -> dict[int, dt.datetime]:
        """Newest valid event time per Kafka partition."""
        out: dict[int, dt.datetime] = {}
        for r in self.rows:
            if r["m"] is not None:
                m = utc(r["m"])
                out[r["partition"]] = max(m, out.get(r["partition"], m))
        return out

    def ends(self) -> dict[int, int]:
        """Per Kafka partition, the offset after the batch's last record (valid or not)."""
        out: dict[int, int] = {}
        for r in self.rows:
            out[r["partition"]] = max(int(r["o_end"]) + 1, out.get(r["partition"], 0))
        return out

    def schema_ids(self) -> list[int]:
        """The schema ids of the batch's decoded records."""
        return sorted({int(i) for r in self.rows for i in r["ids"]})

    def may_have_late(self, prior: dict[int, dt.datetime], lateness_s: int) -> bool:
        """Whether :func:`late_keys` can find a row of this batch (its stats taken before lateness is
        judged), from the groups' bounds alone: False means no valid row is late.

        A row is late only if an earlier row of its partition (an offset at or before its own), or
        ``prior``, is newer than the row by more than the lateness. So none is if, for every group
        (partition x minute) of valid rows, each group that starts at or before the group's last offset
        ends within the lateness of the group's oldest row, and no row is older than ``prior`` minus
        the lateness. A stream whose events arrive in order within the lateness (jitter, a batch of
        any length of event time) passes; a batch that does not is judged row by row."""
        lateness = dt.timedelta(seconds=lateness_s)
        groups: dict[int, list[tuple[int, int, dt.datetime, dt.datetime]]] = {}
        for r in self.rows:
            if r["lo"] is not None:
                group = (int(r["o_lo"]), int(r["o_hi"]), utc(r["lo"]), utc(r["m"]))
                groups.setdefault(r["partition"], []).append(group)
        for partition, bounds in groups.items():
            if partition in prior and min(b[2] for b in bounds) < prior[partition] - lateness:
                return True
            bounds.sort()
            starts = [b[0] for b in bounds]
            newest = list(itertools.accumulate((b[3] for b in bounds), max))  # of the groups starting by each
            for _, last, oldest, _ in bounds:
                if newest[bisect.bisect_right(starts, last) - 1] > oldest + lateness:
                    return True
        return False

    def oldest_valid(self) -> dt.datetime | None:
        return min((utc(r["lo"]) for r in self.rows if r["lo"] is not None), default=None)

    def minutes(self) -> list[dt.datetime]:
        """Event-time minutes that received valid rows (a superset of those gaining new silver rows)."""
        return sorted({utc(r["_minute"]) for r in self.rows if r["_minute"] is not None})

    def facts(
        self,
        rules: SourceRules,
        optional: list[str],
        *,
        prior: dict[int, dt.datetime],
        ids: list[int],
        dupes: int,
    ) -> BatchFacts:
        """The DQ facts of the batch (per-rule checked/failed counts, volume, watermark, drift)."""
        n_in, n_decoded, n = self.total("n_in"), self.total("n_decoded"), self.valid
        q = self.quarantined
        n_late, n_future = q.get(LATE, 0), q.get(FUTURE, 0)
        metrics = [Metric(DECODE, n_in, n_in - n_decoded)]
        metrics += [Metric(r.rule_name, n_decoded, self.total(f"f{i}")) for i, r in enumerate(rules.row)]
        metrics.append(Metric(FUTURE, n + n_late + n_future, n_future))
        metrics.append(Metric(LATE, n + n_late, n_late))
        metrics += [Metric(r.rule_name, n, dupes) for r in rules.of_type("unique")]
        maxima = self.maxima()
        newest = max(maxima.values(), default=None)
        for r in rules.of_type("freshness"):
            if newest is None:
                metrics.append(Metric(r.rule_name, 0, 0))
                continue
            lag = (dt.datetime.now(dt.UTC) - newest).total_seconds()
            detail = f"newest event {lag:.0f} s behind now, allowed {r.max_lag_s:g} s"
            metrics.append(Metric(r.rule_name, 1, int(lag > r.max_lag_s), detail if lag > r.max_lag_s else ""))
        windows: dict[dt.datetime, int] = {}
        for r in self.rows:
            if r["_vw"] is not None and r["n"]:
                ws = utc(r["_vw"])
                windows[ws] = windows.get(ws, 0) + int(r["n"])
        seen = [utc(t) for t in prior.values()] + ([newest] if newest is not None else [])
        return BatchFacts(
            metrics=metrics,
            windows=windows,
            watermark=max(seen, default=None),
            schema_ids=ids,
            non_null={f: self.total(f"nn{j}") for j, f in enumerate(optional)},
            valid=n,
        )


def utc(t: dt.datetime) -> dt.datetime:
    """Aware UTC. pyspark's collect gives naive datetimes in the process's local time zone."""
    return t.astimezone(dt.UTC)


def repeated_keys(valid: DataFrame, seen: DataFrame | None = None) -> DataFrame:
    """``KEY`` of the valid rows that repeat an event: every row of an ``event_id`` but its first (by
    Kafka partition, offset: deterministic, so a replayed batch keeps the same rows), and the first
    too when ``seen`` (a DataFrame with ``event_id``: the open-window state) holds the id.

    Computed on three narrow columns; the records are never shuffled. A hash aggregate finds the ids
    that occur more than once (few: a batch is mostly new events), and only their rows are ranked:
    sorting every id of the batch and the state by ``event_id`` cost more than the rest of the step."""
    ids = valid.select(*KEY, F.col("_rec.event_id").alias("event_id"))
    if seen is not None:
        # The held ids rank before every record (partition -1), so one window finds both kinds of
        # repeat; the held ids are unique, and a (-1, -1) key would match no record anyway.
        held = seen.select(F.lit(-1).alias("partition"), F.lit(-1).cast("long").alias("offset"), "event_id")
        ids = ids.unionByName(held)
    repeated = ids.groupBy("event_id").count().where(F.col("count") > 1).select("event_id")
    few = ids.join(F.broadcast(repeated), "event_id", "left_semi")
    ranked = few.withColumn("_n", F.row_number().over(Window.partitionBy("event_id").orderBy(*KEY)))
    return ranked.where("_n > 1").select(*KEY)


def without_repeats(valid: DataFrame, repeats: DataFrame | None) -> DataFrame:
    """The silver columns of the valid rows whose ``KEY`` is not in ``repeats`` (:func:`repeated_keys`;
    a broadcast lookup; None: the caller knows there are none)."""
    if repeats is not None:
        valid = valid.join(F.broadcast(repeats), list(KEY), "left_anti")
    return valid.select(
        "_rec.*",
        F.col("partition").alias("_kafka_partition"),
        F.col("offset").alias("_kafka_offset"),
        F.col("_schema_id"),
    )


def first_per_event_id(valid: DataFrame, seen: DataFrame | None = None) -> DataFrame:
    """The silver columns of the valid rows that are no repeat (:func:`repeated_keys`): the first row of
    each ``event_id`` not held in ``seen``."""
    return without_repeats(valid, repeated_keys(valid, seen))


QUARANTINE_COLUMNS = ("key", "value", "topic", "partition", "offset", "kafka_timestamp", "_schema_id")


def quarantine_rows(classified: DataFrame) -> DataFrame:
    """Invalid rows as ``quarantine/<source>`` stores them: the original bytes, where they came from, why."""
    return classified.where(F.col("_reason").isNotNull()).select(
        *QUARANTINE_COLUMNS, F.col("_reason").alias("reason"), F.current_timestamp().alias("quarantined_at")
    )
