"""End-to-end pipeline throughput and latency, against a consumer+fastavro ceiling, in one run.

1. Pre-fills ``raw.transactions`` with ``--n`` events (default 2 M), then runs bronze -> silver ->
   gold with ``--until-idle``: events/s end to end.
2. The ceiling, same records: a bare confluent-kafka consumer plus fastavro decoding, no storage.
3. Latency at a steady rate (``--rate`` ev/s for ``--seconds``) with the jobs running: for each
   gold window, the time from the window's end (event time = wall clock here) until PostgreSQL
   holds its final count; p50/p99 over windows and categories.
4. Peak RSS of the Spark JVM and of this process.

Run: ``.venv/bin/python bench/pipeline.py [--n 2000000] [--rate 10000] [--seconds 180]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import fastavro
import httpx
import psutil
import psycopg
from confluent_kafka import Consumer

from eventlake.config import load_settings
from eventlake.kafka.admin import provision_topics
from eventlake.services import Stack, endpoints
from eventlake.services.kafka import admin_client
from eventlake.sources.produce import ProduceSummary, produce
from eventlake.streaming.jobs import start_jobs
from eventlake.streaming.session import build_spark

SOURCE = "transactions"


class PeakRss:
    """Samples the RSS of this process and of its child JVMs once a second."""

    def __init__(self) -> None:
        self.me = 0
        self.jvm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.wait(1.0):
            self.me = max(self.me, proc.memory_info().rss)
            jvm = 0
            for child in proc.children(recursive=True):
                try:
                    jvm += child.memory_info().rss if "java" in child.name() else 0
                except psutil.Error:
                    continue  # a short-lived child (e.g. a Python worker) exited meanwhile
            self.jvm = max(self.jvm, jvm)

    def stop(self) -> None:
        self._stop.set()


def ceiling(bootstrap: str, registry_url: str, topic: str, n: int) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    schemas: dict[int, object] = {}
    seen, start = 0, time.monotonic()
    while seen < n:
        for msg in consumer.consume(10_000, timeout=1.0):
            if msg.error():
                continue
            value = msg.value() or b""
            seen += 1
            if len(value) < 5 or value[0] != 0:
                continue
            sid = int.from_bytes(value[1:5], "big")
            if sid not in schemas:
                text = httpx.get(f"{registry_url}/schemas/ids/{sid}").json()["schema"]
                schemas[sid] = fastavro.parse_schema(json.loads(text))
            fastavro.schemaless_reader(io.BytesIO(value[5:]), schemas[sid])
    consumer.close()
    return n / (time.monotonic() - start)


def latency(settings, live, spark, rate: float, seconds: float) -> tuple[list[float], float]:  # type: ignore[no-untyped-def]
    """Seconds from window end until PostgreSQL shows the window's final txn_count, and the rate achieved."""
    phase_start = time.time()
    queries = start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=False)
    stop = threading.Event()
    summaries: list[ProduceSummary] = []
    producer = threading.Thread(
        target=lambda **kw: summaries.append(produce(**kw)),
        kwargs={
            "settings": settings,
            "bootstrap": live.kafka_bootstrap,
            "registry_url": live.registry_url,
            "sources": [SOURCE],
            "count": None,
            "rate": rate,
            "stop": stop,
        },
    )
    producer.start()
    seen: dict[tuple[dt.datetime, str], list[tuple[float, int]]] = {}
    deadline = time.time() + seconds
    with psycopg.connect(live.postgres_url, autocommit=True) as conn:
        while time.time() < deadline + 60:
            if time.time() >= deadline:
                stop.set()
            now = time.time()
            for we, cat, count in conn.execute(
                "SELECT window_end, merchant_category, txn_count FROM gold_transactions_1m"
            ).fetchall():
                history = seen.setdefault((we, cat), [])
                if not history or history[-1][1] != count:
                    history.append((now, count))
            time.sleep(0.5)
    producer.join()
    for q in queries:
        q.stop()
    # Only this phase's windows (the pre-fill used a simulated clock); a window is final once its
    # last change is seen; skip the first and last (partial) minutes.
    ends = sorted({we for we, _ in seen if we.timestamp() > phase_start})[1:-2]
    achieved = summaries[0].delivered / summaries[0].seconds if summaries else 0.0
    return [hist[-1][0] - we.timestamp() for (we, _), hist in seen.items() if we in ends], achieved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=180)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as home:
        settings = load_settings(
            home=Path(home),
            topics={"sources": [SOURCE]},
            streaming={"trigger_s": 1.0, "max_offsets_per_trigger": 500_000},
        )
        stack = Stack(settings)
        stack.up()
        rss = PeakRss()
        try:
            live = endpoints(settings)
            provision_topics(admin_client(live.kafka_bootstrap), settings.topics.specs(), 1)
            produce(
                settings,
                bootstrap=live.kafka_bootstrap,
                registry_url=live.registry_url,
                sources=[SOURCE],
                count=args.n,
                seed=1,
                start_ms=1_767_225_600_000,
                rate=None,
            )
            spark = build_spark(settings, "eventlake-bench")
            t = time.monotonic()
            start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=True)
            pipeline = args.n / (time.monotonic() - t)
            top = ceiling(live.kafka_bootstrap, live.registry_url, settings.topics.raw(SOURCE), args.n)
            print(
                f"pipeline end_to_end {pipeline:10.0f} ev/s  ceiling(consumer+fastavro) {top:10.0f} ev/s  "
                f"ratio {pipeline / top:.3f}  n {args.n}"
            )
            lat, achieved = latency(settings, live, spark, args.rate, args.seconds)
            if len(lat) >= 2:
                q = statistics.quantiles(lat, n=100)
                print(
                    f"pipeline latency_event_to_postgres p50 {q[49]:.1f} s  p99 {q[98]:.1f} s  "
                    f"windows {len(lat)}  rate asked {args.rate:g} achieved {achieved:.0f} ev/s"
                )
            else:
                print(f"pipeline latency: too few complete windows ({len(lat)}); run longer (--seconds)")
            print(f"pipeline peak_rss_mb driver {rss.me / 2**20:.0f}  jvm {rss.jvm / 2**20:.0f}")
            spark.stop()
        finally:
            rss.stop()
            stack.down()


if __name__ == "__main__":
    main()
