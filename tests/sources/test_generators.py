"""Generators and fault injection, offline: determinism, clock, realism, exact fault labels."""

from __future__ import annotations

import hashlib
import io
import json
import random
import uuid
from collections import Counter

import fastavro
import pytest

from eventlake.config import Settings, load_settings
from eventlake.sources import GENERATORS, Event, make_generator
from eventlake.sources.base import event_id
from eventlake.sources.faults import KINDS, UNKNOWN_SCHEMA_ID, FaultInjector, nullable_required
from eventlake.sources.produce import Pacer

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def events(
    settings: Settings, source: str, n: int, *, seed: int = 1, faults: float = 0.0, rate: float = 100
) -> list[Event]:
    gen = make_generator(settings, source, seed=seed, start_ms=START, rate=rate)
    inj = FaultInjector(settings, source, gen.rng, n, faults)
    return [inj.apply(gen.next_event(), i) for i in range(n)]


@pytest.mark.parametrize("source", list(GENERATORS))
def test_same_seed_same_events_other_seed_other_events(settings: Settings, source: str) -> None:
    a = [e.value for e in events(settings, source, 300, seed=5)]
    b = [e.value for e in events(settings, source, 300, seed=5)]
    c = [e.value for e in events(settings, source, 300, seed=6)]
    assert a == b
    assert a != c
    assert len({v["event_id"] for v in a}) == 300  # type: ignore[index]


@pytest.mark.parametrize("source", list(GENERATORS))
def test_simulated_clock_with_bounded_jitter(settings: Settings, source: str) -> None:
    rate = 50.0
    evs = events(settings, source, 500, rate=rate)
    jitter = settings.sources.jitter_ms
    for i, e in enumerate(evs):
        nominal = START + int(i * 1000 / rate)
        assert e.value is not None
        assert nominal - jitter <= e.value["event_time"] <= nominal
    times = [e.value["event_time"] for e in evs if e.value is not None]
    assert times != sorted(times), "some events arrive out of order"


@pytest.mark.parametrize("source", list(GENERATORS))
def test_no_faults_means_required_fields_present_and_in_range(settings: Settings, source: str) -> None:
    key_field = GENERATORS[source].key_field
    for e in events(settings, source, 2000):
        assert e.fault is None and e.value is not None
        assert all(e.value[f] is not None for f in settings.sources.required[source])
        assert e.key == e.value[key_field]
        for field, bounds in settings.sources.ranges[source].items():
            if e.value.get(field) is not None:
                assert bounds.contains(e.value[field]), (field, e.value[field])


def test_user_sessions_follow_the_markov_walk(settings: Settings) -> None:
    evs = [e.value for e in events(settings, "user_activity", 5000) if e.value]
    by_session: dict[str, list[str]] = {}
    for v in evs:
        by_session.setdefault(v["session_id"], []).append(v["event_type"])
    assert all(types[0] == "SESSION_START" for types in by_session.values())
    assert all(t != "LOGOUT" for types in by_session.values() for t in types[:-1]), "nothing after a logout"
    kinds = Counter(v["event_type"] for v in evs)
    assert kinds["PAGE_VIEW"] > kinds["PURCHASE"] > 0
    assert all(v["duration_ms"] is None for v in evs if v["event_type"] == "SESSION_START")
    assert len({v["user_id"] for v in evs}) > 100 and len({v["country"] for v in evs}) >= 5


def test_iot_anomalies_are_labelled_and_real(settings: Settings) -> None:
    evs = events(settings, "iot_sensors", 20000)
    labels = Counter(e.anomaly for e in evs)
    assert labels["spike"] > 5 and labels["stuck"] > 5
    # A spike is far off the device's usual readings.
    by_device: dict[str, list[float]] = {}
    for e in evs:
        if e.anomaly is None and e.value:
            by_device.setdefault(e.value["device_id"], []).append(e.value["value"])
    for e in evs:
        if e.anomaly == "spike" and e.value and len(by_device.get(e.value["device_id"], [])) > 10:
            normal = by_device[e.value["device_id"]]
            mean = sum(normal) / len(normal)
            spread = max(normal) - min(normal)
            assert abs(e.value["value"] - mean) > spread / 2


def test_transactions_declines_and_bursts(settings: Settings) -> None:
    evs = [e for e in events(settings, "transactions", 20000)]
    statuses = Counter(e.value["status"] for e in evs if e.value)
    assert 0.02 < statuses["DECLINED"] / len(evs) < 0.12
    bursts = [e for e in evs if e.anomaly == "velocity_burst"]
    assert bursts and all(not e.value["card_present"] for e in bursts if e.value)
    assert Counter(e.key for e in bursts).most_common(1)[0][1] >= 10, "a burst hammers one account"
    assert all(e.value["amount"] > 0 for e in evs if e.value)


@pytest.mark.parametrize("source", list(GENERATORS))
def test_fault_labels_add_up_and_mean_what_they_say(settings: Settings, source: str) -> None:
    n, fraction = 4200, 0.1
    evs = events(settings, source, n, faults=fraction)
    labels = Counter(e.fault for e in evs if e.fault)
    assert sum(labels.values()) == round(n * fraction)
    assert set(labels) == set(KINDS)
    assert labels["undecodable"] == labels["late"] == n * fraction / len(KINDS)
    seen_ids: set[str] = set()
    schema = fastavro.parse_schema(json.loads((settings.schemas_dir / f"{source}.avsc").read_text()))
    nullable = nullable_required(settings.schemas_dir / f"{source}.avsc", settings.sources.required[source])
    late_ms = settings.streaming.allowed_lateness_s * 1000
    for i, e in enumerate(evs):
        assert (e.headers.get("eventlake-fault") or None) == e.fault
        if e.fault == "null_required":
            assert e.value is not None and any(e.value[f] is None for f in nullable)
        elif e.fault == "out_of_range":
            assert e.value is not None
            ranges = settings.sources.ranges[source]
            assert any(e.value.get(f) is not None and not r.contains(e.value[f]) for f, r in ranges.items())
        elif e.fault == "duplicate":
            assert e.value is not None and e.value["event_id"] in seen_ids
        elif e.fault == "late":
            assert e.value is not None and e.value["event_time"] < START + i * 10 - late_ms
        elif e.fault == "undecodable":
            assert e.value is None and e.raw is not None
            assert e.raw[0] != 0 or int.from_bytes(e.raw[1:5], "big") == UNKNOWN_SCHEMA_ID
        elif e.fault == "garbage_body":
            # The producer's own schema id, then a first-field length of 1-2 GiB over a few bytes.
            assert e.value is None and e.raw is not None and e.raw[:5] == b"\x00\x00\x00\x00\x01"
            with pytest.raises(EOFError):
                fastavro.schemaless_reader(io.BytesIO(e.raw[5:]), schema)
        if e.value is not None:
            seen_ids.add(e.value["event_id"])


def test_nullable_required_fields_come_from_the_schemas(settings: Settings) -> None:
    found = {s: nullable_required(settings.schemas_dir / f"{s}.avsc", settings.sources.required[s]) for s in GENERATORS}
    assert found == {
        "user_activity": ["device", "country"],
        "iot_sensors": ["value"],
        "transactions": ["merchant_category"],
    }
    for s in GENERATORS:
        doc = json.loads((settings.schemas_dir / f"{s}.avsc").read_text())
        assert all(f.get("doc") for f in doc["fields"]), "every field is documented"


def test_pacer_holds_the_rate_without_drift() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = Pacer(200.0, clock=lambda: now[0], sleep=sleep)
    for i in range(2000):
        pacer.wait()
        now[0] += 0.0004 if i % 50 else 0.02  # uneven work, including hiccups longer than 1/rate
    assert 2000 / now[0] == pytest.approx(200.0, rel=0.05)
    unpaced = Pacer(None, clock=lambda: 1 / 0, sleep=lambda _s: None)
    unpaced.wait()  # never reads the clock


def test_pacer_paces_runs_of_records_and_sleeps_until_due() -> None:
    now = [0.0]
    woke_early = [0]

    def short_sleep(seconds: float) -> None:  # like a producer poll that returns after a report
        woke_early[0] += 1
        now[0] += seconds / 2 if seconds > 1e-4 else seconds

    pacer = Pacer(10_000.0, clock=lambda: now[0], sleep=short_sleep)
    for k in range(200):
        pacer.wait(50)
        assert now[0] >= k * 50 / 10_000 - 1e-12, "a run never starts before it is due"
        now[0] += 0.001  # the run takes a fifth of its 5 ms
    assert 200 * 50 / now[0] == pytest.approx(10_000, rel=0.05)
    assert woke_early[0] > 200


def test_event_ids_are_the_uuid4_of_the_same_random_bits() -> None:
    a, b = random.Random(3), random.Random(3)
    for _ in range(5000):
        assert event_id(a) == str(uuid.UUID(int=b.getrandbits(128), version=4))


# What the generators made before they were sped up (seed 2, 5 % faults, 3000 records each).
# A deliberate change to a generator, its config defaults or the fault injector changes these
# (last: the garbage_body fault kind, no late fault among the first records).
GOLDEN = {"user_activity": "c2df2d709fa35b00", "iot_sensors": "012ac517e0fd5966", "transactions": "1b9767a2d073b8ed"}


@pytest.mark.parametrize("source", list(GENERATORS))
def test_generated_events_are_unchanged_byte_for_byte(source: str) -> None:
    settings = load_settings(streaming={"allowed_lateness_s": 120})
    h = hashlib.sha256()
    for e in events(settings, source, 3000, seed=2, faults=0.05):
        row = [e.key, e.value, e.fault, e.anomaly, e.raw.hex() if e.raw else None, e.headers]
        h.update(json.dumps(row, sort_keys=True).encode())
    assert h.hexdigest()[:16] == GOLDEN[source]
