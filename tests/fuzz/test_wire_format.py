"""Property tests of the Python wire-format decoder (``serving.classify.Decoder``) on arbitrary bytes.

Any byte string must give a decoded record or ``None`` (silver's "invalid"/"undecodable"), never an
exception or a hang; garbage under a *known* schema id (wrong types, a length field of 2^31, a map
block count of 2^31) must be rejected cheaply. The decoder runs over a real ``SchemaCache`` on the
session's registry, with the project's iot_sensors schema and a small schema with a map.

"Cheaply" is asserted as peak allocation (deterministic: a hostile length, if it were honoured, would
allocate it), not as wall-clock time: a timed assertion failed once in CI on a 15-byte body that
took 0.35 s on a loaded machine and 0.1 ms on the rerun. The only clock left is ``HANG_S``, a
hang detector 10,000 times what one decode takes, so that a loop over a hostile count is caught.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlake.quality.rules import SourceRules, load_quality
from eventlake.serving.classify import Decoder
from eventlake.streaming.schemas import SchemaCache
from tests.conftest import MakeSettings

SCHEMAS = Path(__file__).resolve().parents[2] / "data" / "schemas"
MAPPED = {
    "type": "record",
    "name": "Mapped",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "props", "type": {"type": "map", "values": "string"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}
FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)
NOW_MS = 1_800_000_000_000
HANG_S = 5.0
PEAK_BYTES = 4 * 1024 * 1024


def zigzag(n: int) -> bytes:
    """Avro's long encoding (zig-zag varint)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte, z = z & 0x7F, z >> 7
        if not z:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _decoder(registry_url: str, schema: str, rules: SourceRules) -> tuple[Decoder, int]:
    subject = f"fuzz.{uuid.uuid4().hex[:8]}-value"
    resp = httpx.post(f"{registry_url}/subjects/{subject}/versions", json={"schema": schema}, timeout=30)
    assert resp.status_code == 200, resp.text
    return Decoder(SchemaCache(registry_url, subject), rules, future_skew_s=60), int(resp.json()["id"])


@pytest.fixture(scope="module")
def iot(registry_url: str, make_settings: MakeSettings) -> tuple[Decoder, int]:
    rules = load_quality(make_settings("fuzz")).source("iot_sensors")
    return _decoder(registry_url, (SCHEMAS / "iot_sensors.avsc").read_text(), rules)


@pytest.fixture(scope="module")
def mapped(registry_url: str) -> tuple[Decoder, int]:
    return _decoder(registry_url, json.dumps(MAPPED), SourceRules("fuzz", []))


def _bounded(call: Callable[[], object]) -> object:
    """``call()`` with its peak allocation asserted small (a hostile length is not honoured) and no hang."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - started < HANG_S, "the decoder hung"
    assert peak < PEAK_BYTES, f"peak {peak} bytes"
    return result


def _judged(decoder: Decoder, value: bytes) -> object:
    verdict = _bounded(lambda: decoder.decode(value, NOW_MS))
    assert verdict is None or isinstance(verdict, dict), f"{len(value)} bytes gave {verdict!r}"
    return verdict


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes_are_a_record_or_rejected(iot: tuple[Decoder, int], value: bytes) -> None:
    _judged(iot[0], value)


@FUZZ
@given(st.binary(max_size=512), st.integers(0, 2**32 - 1))
def test_any_body_under_any_header_is_a_record_or_rejected(iot: tuple[Decoder, int], body: bytes, sid: int) -> None:
    _judged(iot[0], b"\x00" + sid.to_bytes(4, "big") + body)


@FUZZ
@given(st.binary(max_size=512))
def test_garbage_under_a_known_id_is_rejected_cheaply(iot: tuple[Decoder, int], body: bytes) -> None:
    decoder, sid = iot
    _judged(decoder, b"\x00" + sid.to_bytes(4, "big") + body)


@FUZZ
@given(st.binary(max_size=256))
def test_garbage_under_a_schema_with_collections_is_rejected_cheaply(mapped: tuple[Decoder, int], body: bytes) -> None:
    decoder, sid = mapped
    _judged(decoder, b"\x00" + sid.to_bytes(4, "big") + body)


@pytest.mark.parametrize("length", [2**31, 2**31 - 1, 2**62, -(2**31), -1])
def test_a_hostile_string_length_is_rejected_cheaply(iot: tuple[Decoder, int], length: int) -> None:
    decoder, sid = iot
    value = b"\x00" + sid.to_bytes(4, "big") + zigzag(length) + b"abc"
    assert _bounded(lambda: decoder.decode(value, NOW_MS)) is None


@pytest.mark.parametrize("count", [2**31, -(2**31), 2**62])
def test_a_hostile_map_block_count_is_rejected_cheaply(mapped: tuple[Decoder, int], count: int) -> None:
    decoder, sid = mapped
    head = b"\x00" + sid.to_bytes(4, "big") + zigzag(1) + b"e" + zigzag(NOW_MS)
    for tail in (b"", b"\x00" * 64):
        assert _bounded(lambda t=tail: decoder.decode(head + zigzag(count) + t, NOW_MS)) is None  # type: ignore[misc]


def test_a_valid_record_is_decoded(mapped: tuple[Decoder, int]) -> None:
    """The properties above must not pass because everything is rejected."""
    decoder, sid = mapped
    body = zigzag(1) + b"e" + zigzag(NOW_MS) + zigzag(1) + zigzag(1) + b"k" + zigzag(1) + b"v" + zigzag(0) + zigzag(0)
    record = decoder.decode(b"\x00" + sid.to_bytes(4, "big") + body, NOW_MS)
    assert record is not None and record["props"] == {"k": "v"} and record["_ms"] == NOW_MS


def test_an_unregistered_subject_rejects_everything(registry_url: str) -> None:
    """The registry's 404 (nothing produced yet) is "unknown id" for every record, not an error."""
    decoder = Decoder(
        SchemaCache(registry_url, f"fuzz.{uuid.uuid4().hex[:8]}-value"), SourceRules("x", []), future_skew_s=1
    )
    assert decoder.decode(b"\x00\x00\x00\x00\x01" + b"x" * 10, NOW_MS) is None
