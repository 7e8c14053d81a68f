"""Silver's decode verdicts on the real Spark session: a garbage body under a known schema id (the
injector's ``garbage_body``: a first-field length of 1-2 GiB) is undecodable, and costs no more
memory than its bytes (without the session's Avro limits, decoding such records ran the JVM out of
heap)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from pyspark.sql import functions as F

from eventlake.config import load_settings
from eventlake.kafka.serde import WireSerializer
from eventlake.quality.rules import load_quality
from eventlake.sources import make_generator
from eventlake.sources.faults import FaultInjector
from eventlake.streaming import silver as sv
from tests.streaming.test_pipeline import START


def test_garbage_bodies_under_a_known_id_are_undecodable_and_good_records_pass(spark: Any) -> None:
    settings = load_settings()
    schema = (settings.schemas_dir / "transactions.avsc").read_text()
    serialize = WireSerializer(7, schema)
    gen = make_generator(settings, "transactions", seed=3, start_ms=START, rate=100)
    faults = FaultInjector(settings, "transactions", random.Random(1), 60, 0.0, schema_id=7)
    good = [serialize(gen.next_event().value) for _ in range(40)]  # type: ignore[arg-type]
    garbage = [faults._make("garbage_body", gen.next_event()).raw for _ in range(60)]
    assert all(g is not None and g[:5] == good[0][:5] for g in garbage), "the same schema id as good records"
    produced = dt.datetime.fromtimestamp(START / 1000, dt.UTC) + dt.timedelta(minutes=10)
    rows = [(g, i, produced) for i, g in enumerate(good + garbage)]
    batch = spark.createDataFrame(rows, "value binary, offset long, kafka_timestamp timestamp")
    checked = sv.check(
        sv.decode(sv.with_schema_id(batch), {7: schema}, schema),
        load_quality(settings).source("transactions"),
        [7],
        schema,
        future_skew_s=60,
    )
    reasons = {r["offset"]: r["_reason"] for r in checked.select("offset", "_reason").collect()}
    assert [reasons[i] for i in range(40)] == [None] * 40
    assert [reasons[i] for i in range(40, 100)] == ["undecodable"] * 60


def test_repeats_are_every_row_of_an_event_id_but_its_first_and_every_row_the_state_holds(spark: Any) -> None:
    """Dedup on real Spark: within the batch the first row of an ``event_id`` (by Kafka partition, then
    offset) is kept whatever order the rows come in; an id the open-window state holds repeats in
    every row; ids seen once pass."""
    rows = [
        (2, 5, "a"),  # a: three rows, the first is (1, 9)
        (1, 9, "a"),
        (2, 1, "a"),
        (0, 3, "b"),  # b: once, not held
        (0, 4, "c"),  # c: once, but held by the state
        (1, 2, "d"),  # d: twice and held
        (1, 7, "d"),
    ]
    valid = spark.createDataFrame(rows, "partition int, offset long, id string").select(
        "partition", "offset", F.struct(F.col("id").alias("event_id")).alias("_rec"), F.lit(1).alias("_schema_id")
    )
    held = spark.createDataFrame([("c",), ("d",), ("zz",)], "event_id string")

    assert sorted(tuple(r) for r in sv.repeated_keys(valid, held).collect()) == [(0, 4), (1, 2), (1, 7), (2, 1), (2, 5)]
    assert sorted(tuple(r) for r in sv.repeated_keys(valid).collect()) == [(1, 7), (2, 1), (2, 5)]
    kept = sv.first_per_event_id(valid, held)  # what backfill calls; the pass holds the repeats in between
    assert sorted((r.event_id, r._kafka_partition, r._kafka_offset) for r in kept.collect()) == [
        ("a", 1, 9),
        ("b", 0, 3),
    ]
