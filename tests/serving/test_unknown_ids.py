"""A flood of junk records that start like the wire format (byte 0, then random schema ids): the
serving path asks the registry at most about once a second, whatever the number of unknown ids, holds
no per-id miss cache, and its gold is exactly that of the good records (real broker and registry)."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from eventlake.services import Stack
from eventlake.serving.runner import run_until_idle
from eventlake.sources.faults import FAULT_HEADER
from tests.conftest import MakeSettings
from tests.serving.test_serving import _prepare
from tests.streaming import recompute
from tests.streaming.test_pipeline import START, assert_gold_matches
from tests.streams import send

pytestmark = pytest.mark.e2e
SOURCE = "transactions"


def _registry_requests(registry_url: str) -> float:
    text = httpx.get(f"{registry_url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "eventlake_registry_requests_total" and "subjects" in s.labels.get("endpoint", "")
    )


def test_a_flood_of_unknown_schema_ids_costs_about_one_registry_request_a_second(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any
) -> None:
    settings, live = _prepare(stack, make_settings, tmp_path, (SOURCE,))
    good = 300
    send(settings, live, [SOURCE], good, seed=5, start_ms=START)
    junk = 20_000
    rng = random.Random(8)
    producer = Producer({"bootstrap.servers": live.kafka_bootstrap, "linger.ms": 20})
    for i in range(junk):
        value = b"\x00" + rng.randrange(1_000_000, 2**31).to_bytes(4, "big") + rng.randbytes(24)
        producer.produce(settings.topics.raw(SOURCE), value, key=str(i), headers={FAULT_HEADER: "undecodable"})
        if i % 5000 == 0:
            producer.flush()
    assert producer.flush(30) == 0

    before = _registry_requests(live.registry_url)
    t = time.monotonic()
    run_until_idle(settings, live)
    elapsed = time.monotonic() - t
    asked = _registry_requests(live.registry_url) - before
    assert asked <= 3 * (elapsed + 1) + 5, f"{asked:g} registry requests in {elapsed:.1f} s for {junk} unknown ids"

    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw(SOURCE), good + junk)
    assert raw.labels["undecodable"] == junk and len(raw.records) == good
    assert_gold_matches(settings, SOURCE, recompute.gold(SOURCE, raw.records), delta=False)
