"""Silver's decode verdicts on the real Spark session: a garbage body under a known schema id (the
injector's ``garbage_body``: a first-field length of 1-2 GiB) is undecodable, and costs no more
memory than its bytes (without the session's Avro limits, decoding such records ran the JVM out of
heap)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

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
