"""Spark's real-time mode against its micro-batch mode, on the one hop it supports here (issue 12's trial).

pyspark 4.2 (eventlake's pin) runs real-time mode (``trigger(realTime=...)``) for *stateless* queries
only: Kafka source, projections and filters, Kafka or ``foreach`` sink, update output mode. Streaming
aggregations and dedup (eventlake's gold windows, exact distinct users, p95, the dedup) are planned for
Spark 4.3, which Maven Central does not serve here. So the trial is the stateless head of the hot
path: ``raw.transactions`` (read_committed) -> ``from_avro`` -> a validity rule -> a Kafka topic, run
once in each mode at the same offered rate, on the same Spark session and the same stack:

- ``micro_batch``: the default trigger (a micro-batch as soon as the last one ended);
- ``real_time``: ``trigger(realTime=--checkpoint-every)``: one long-running task per Kafka partition,
  so the session needs a task slot per partition (``local[N]``, N >= partitions; threads, not cores).

Latency per record: the output record's Kafka timestamp (set by Spark's producer when it sends it)
minus the input record's (set by ``eventlake produce``), both this machine's clock; p50/p99/max over
the records of the measured span (after ``--warm`` seconds). CPU seconds per million events of the
Spark JVM over the span. What it gives eventlake is discussed in docs/performance.md ("Spark
real-time mode").

Run: ``.venv/bin/python bench/realtime.py [--rate 10000] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from eventlake.kafka.admin import admin_client, provision_topics
from eventlake.logs import configure_logging
from eventlake.registry.client import register_schemas
from eventlake.services import endpoints

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import Meter, latest_schema
from pipeline import _settings, local_stack, producer_env, start_producer, stop_producer

SOURCE = "transactions"
MODES = ("micro_batch", "real_time")


def hop(
    spark: Any, bootstrap: str, topic: str, schema: str, *, out_topic: str, checkpoint: str, mode: str, every: str
) -> Any:
    """The stateless head of the hot path as one query: decode, keep the valid, write to ``out_topic``."""
    from pyspark.sql import functions as F  # noqa: PLC0415
    from pyspark.sql.avro.functions import from_avro  # noqa: PLC0415

    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "latest")
        .option("kafka.isolation.level", "read_committed")
        .load()
    )
    event = from_avro(F.expr("substring(value, 6, length(value) - 5)"), schema).alias("e")
    valid = raw.select(F.col("key"), F.col("timestamp"), event).where(F.col("e.amount") >= 0)
    out = valid.select(
        F.col("key"),
        F.to_json(F.struct(F.unix_millis(F.col("timestamp")).alias("in_ms"), F.col("e.transaction_id"))).alias("value"),
    )
    writer = (
        out.writeStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("topic", out_topic)
        .option("checkpointLocation", checkpoint)
        .outputMode("update")
        .queryName(f"hop_{mode}")
    )
    writer = writer.trigger(realTime=every) if mode == "real_time" else writer
    return writer.start()


def delays(bootstrap: str, out_topic: str, since_ms: int) -> list[float]:
    """Seconds from input to output Kafka timestamp, for the output records written after ``since_ms``."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        parts = consumer.list_topics(out_topic, timeout=10).topics[out_topic].partitions
        consumer.assign([TopicPartition(out_topic, p, 0) for p in parts])
        ends = {p: consumer.get_watermark_offsets(TopicPartition(out_topic, p), timeout=10)[1] for p in parts}
        left = {p for p, end in ends.items() if end > 0}
        out: list[float] = []
        deadline = time.monotonic() + 300
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{out_topic}: partitions {sorted(left)} not read to their end in 300 s")
            for msg in consumer.consume(10_000, timeout=5):
                if msg.error():
                    raise RuntimeError(str(msg.error()))
                out_ms = msg.timestamp()[1]
                if out_ms >= since_ms:
                    out.append((out_ms - json.loads(msg.value())["in_ms"]) / 1000)
                if msg.offset() + 1 >= ends[msg.partition()]:
                    left.discard(msg.partition())
        return out
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10_000, help="events/s offered to raw.transactions")
    parser.add_argument("--seconds", type=float, default=60, help="measured span per mode")
    parser.add_argument("--warm", type=float, default=20, help="seconds per mode before the measured span")
    parser.add_argument("--checkpoint-every", default="5 seconds", help="real-time mode's batch duration")
    parser.add_argument("--log", type=Path, default=Path("/tmp/eventlake-bench-realtime.log"))
    args = parser.parse_args()
    configure_logging("INFO", args.log)
    from eventlake.streaming.session import build_spark  # noqa: PLC0415

    with local_stack("bench-realtime-") as home:
        settings = _settings(home, "rt")
        settings.topics.sources = (SOURCE,)
        partitions = settings.topics.raw_spec.partitions
        settings.streaming.master = f"local[{partitions + 2}]"  # a slot per partition, and two for the rest
        live = endpoints(settings)
        provision_topics(admin_client(live.kafka_bootstrap), settings.topics.specs(), 1)
        register_schemas(settings, live.registry_url)
        topic = settings.topics.raw(SOURCE)
        schema = latest_schema(live.registry_url, f"{topic}-value")
        spark = build_spark(settings, "eventlake-bench-realtime")
        print(
            f"spark {spark.version}  master {settings.streaming.master}  partitions {partitions}"
            f"  rate {args.rate:g} ev/s  span {args.seconds:g} s per mode",
            flush=True,
        )
        producer = start_producer(producer_env(home, settings), args.rate, SOURCE)
        try:
            for mode in MODES:
                out_topic = f"rt.out.{mode}"
                provision_topics(admin_client(live.kafka_bootstrap), {out_topic: settings.topics.raw_spec}, 1)
                query = hop(
                    spark,
                    live.kafka_bootstrap,
                    topic,
                    schema,
                    out_topic=out_topic,
                    checkpoint=str(home / f"ckpt-{mode}"),
                    mode=mode,
                    every=args.checkpoint_every,
                )
                time.sleep(args.warm)
                since_ms = int(time.time() * 1000)
                meter = Meter().start()
                time.sleep(args.seconds)
                meter.stop()
                # Stopping a real-time query interrupts its long-running tasks mid-write: Spark logs
                # each abort as an ERROR with a stack trace. Expected here; the figures are read after.
                spark.sparkContext.setLogLevel("FATAL")
                query.stop()
                spark.sparkContext.setLogLevel("WARN")  # the root level of eventlake's log4j2 file
                values = delays(live.kafka_bootstrap, out_topic, since_ms)
                if len(values) < 100:
                    print(
                        f"realtime {mode}: only {len(values)} records out; exception: {query.exception()}", flush=True
                    )
                    continue
                q = statistics.quantiles(values, n=100)
                cpu_per_m = meter.child_cpu_s / len(values) * 1e6
                print(
                    f"realtime {mode:<11} records {len(values):>7}  input_to_output p50 {q[49] * 1000:7.1f} ms"
                    f"  p99 {q[98] * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms"
                    f"  jvm_cpu {cpu_per_m:.1f} s/M",
                    flush=True,
                )
        finally:
            try:
                stop_producer(producer)
            finally:
                spark.stop()


if __name__ == "__main__":
    main()
