"""Silver's decode verdicts on the real Spark session: a garbage body under a known schema id (the
injector's ``garbage_body``: a first-field length of 1-2 GiB) is undecodable, and costs no more
memory than its bytes (without the session's Avro limits, decoding such records ran the JVM out of
heap)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import Row
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


T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _stats(rows: list[tuple[int, int, dt.datetime]]) -> sv.BatchStats:
    """The stats rows ``BatchStats.of`` collects for valid rows (partition, offset, event time), one
    per partition and minute: what ``may_have_late`` reads."""
    groups: dict[tuple[int, dt.datetime], list[tuple[int, dt.datetime]]] = {}
    for p, o, t in rows:
        groups.setdefault((p, t.replace(second=0, microsecond=0)), []).append((o, t))
    return sv.BatchStats(
        [
            Row(
                partition=p,
                _minute=m,
                lo=min(t for _, t in g),
                m=max(t for _, t in g),
                o_lo=min(o for o, _ in g),
                o_hi=max(o for o, _ in g),
            )
            for (p, m), g in groups.items()
        ]
    )


def _late_rows(rows: list[tuple[int, int, dt.datetime]], prior: dict[int, dt.datetime], lateness_s: int) -> list[int]:
    """Offsets ``late_keys`` marks, the definition itself: older than the newest event before it in
    its partition (or ``prior``) minus the lateness."""
    late, newest = [], dict(prior)
    for p, o, t in sorted(rows):
        newest[p] = max(newest.get(p, t), t)
        if t < newest[p] - dt.timedelta(seconds=lateness_s):
            late.append(o)
    return late


@settings(max_examples=400, deadline=None)
@given(
    times=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 900)), min_size=1, max_size=40),
    lateness_s=st.sampled_from([0, 5, 60, 120]),
    prior_s=st.one_of(st.none(), st.integers(0, 900)),
)
def test_a_batch_judged_free_of_late_rows_has_none(
    times: list[tuple[int, int]], lateness_s: int, prior_s: int | None
) -> None:
    """``BatchStats.may_have_late`` lets the pass skip the lateness window: it must never say "none"
    of a batch in which the row-by-row rule finds a late row (any order, any partitions, ``prior``)."""
    rows = [(p, o, T0 + dt.timedelta(seconds=s)) for o, (p, s) in enumerate(times)]
    prior = {0: T0 + dt.timedelta(seconds=prior_s)} if prior_s is not None else {}
    if _late_rows(rows, prior, lateness_s):
        assert _stats(rows).may_have_late(prior, lateness_s)


def test_an_in_order_batch_with_jitter_is_judged_free_of_late_rows_without_the_window() -> None:
    """What the live generators send (event time = clock, jitter under ``sources.jitter_ms``), over
    two hours of event time in one batch: no late row, and the bounds tell so; one record an hour old
    amid them is caught, as is a batch older than its partition's ``prior``."""
    rng = random.Random(5)
    rows = [(i % 3, i, T0 + dt.timedelta(seconds=i * 0.5 + rng.uniform(-2, 2))) for i in range(14_400)]
    assert not _late_rows(rows, {}, 120)
    assert not _stats(rows).may_have_late({}, 120)
    assert _stats(rows).may_have_late({}, 1)  # jitter beyond a 1 s lateness: judged row by row
    old = [*rows, (1, 14_400, T0 + dt.timedelta(minutes=60))]
    assert _late_rows(old, {}, 120) == [14_400]
    assert _stats(old).may_have_late({}, 120)
    assert _stats(rows).may_have_late({2: T0 + dt.timedelta(minutes=5)}, 120)
    assert not _stats(rows).may_have_late({2: T0 + dt.timedelta(seconds=100)}, 120)
