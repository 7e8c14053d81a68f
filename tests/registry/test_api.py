"""The registry through stock Confluent clients and raw HTTP, against the real server process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from eventlake.config import Settings
from eventlake.services import Stack
from eventlake.services.registry import RegistryService
from tests.conftest import MakeSettings

MEDIA = "application/vnd.schemaregistry.v1+json"


def record(name: str, *extra: dict[str, Any]) -> str:
    fields = [{"name": "event_id", "type": "string"}, *extra]
    return json.dumps({"type": "record", "name": name, "namespace": "eventlake.test", "fields": fields})


def subject() -> str:
    return f"t.{uuid.uuid4().hex[:10]}-value"


def test_serializer_round_trip_and_ids(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    topic = subject().removesuffix("-value")
    schema = record("Click", {"name": "n", "type": "long"})
    ser = AvroSerializer(client, schema)
    de = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    payload = ser({"event_id": "e1", "n": 42}, ctx)
    assert payload is not None and payload[0] == 0, "Confluent wire format: magic byte 0"
    schema_id = int.from_bytes(payload[1:5], "big")
    assert de(payload, ctx) == {"event_id": "e1", "n": 42}

    # Fetch by id with a fresh client (no cache), same schema; same schema again -> same id.
    fresh = SchemaRegistryClient({"url": registry_url})
    assert json.loads(fresh.get_schema(schema_id).schema_str) == json.loads(schema)
    assert fresh.register_schema(f"{topic}-value", Schema(schema, "AVRO")) == schema_id
    # The same schema under another subject keeps its global id.
    assert fresh.register_schema(subject(), Schema(schema, "AVRO")) == schema_id
    latest = fresh.get_latest_version(f"{topic}-value")
    assert latest.version == 1 and latest.schema_id == schema_id
    assert fresh.lookup_schema(f"{topic}-value", Schema(schema, "AVRO")).version == 1


def test_evolution_409_and_compatibility_switch(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    s = subject()
    v1 = record("Evt")
    compatible = record("Evt", {"name": "country", "type": "string", "default": "NL"})
    breaking = record("Evt", {"name": "amount", "type": "double"})  # no default: BACKWARD breaks
    id1 = client.register_schema(s, Schema(v1, "AVRO"))
    id2 = client.register_schema(s, Schema(compatible, "AVRO"))
    assert id2 != id1 and client.get_versions(s) == [1, 2]

    assert client.test_compatibility(s, Schema(breaking, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema(s, Schema(breaking, "AVRO"))
    assert err.value.http_status_code == 409 and err.value.error_code == 409

    assert client.set_compatibility(s, "NONE") == {"compatibility": "NONE"}
    assert client.get_compatibility(s) == "NONE"
    id3 = client.register_schema(s, Schema(breaking, "AVRO"))
    assert client.get_versions(s) == [1, 2, 3]
    client.set_compatibility(s, "BACKWARD")
    assert client.get_compatibility(s) == "BACKWARD"
    # Data written with v2 reads through the deserializer by id after all that.
    assert client.get_schema(id3).schema_str is not None

    verbose = httpx.post(
        f"{registry_url}/compatibility/subjects/{s}/versions/1?verbose=true",
        json={"schema": record("Evt", {"name": "x", "type": "int"})},
    ).json()
    assert verbose["is_compatible"] is False and verbose["messages"]


def test_soft_then_permanent_delete(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    s = subject()
    sid = client.register_schema(s, Schema(record("Del"), "AVRO"))
    client.register_schema(s, Schema(record("Del", {"name": "a", "type": "int", "default": 1}), "AVRO"))
    assert client.delete_version(s, 2) == 2
    assert client.get_versions(s) == [1]
    with pytest.raises(SchemaRegistryError) as err:
        client.delete_subject(s, permanent=True)
    assert err.value.error_code == 40405
    assert client.delete_subject(s) == [1]
    assert s not in client.get_subjects()
    assert s in httpx.get(f"{registry_url}/subjects?deleted=true").json()
    assert client.delete_subject(s, permanent=True) == [1, 2]
    assert s not in httpx.get(f"{registry_url}/subjects?deleted=true").json()
    # Ids are global and stable: the schema is still served by id.
    assert httpx.get(f"{registry_url}/schemas/ids/{sid}").status_code == 200


def test_config_and_mode(registry_url: str) -> None:
    assert httpx.get(f"{registry_url}/config").json() == {"compatibilityLevel": "BACKWARD"}
    s = subject()
    r = httpx.get(f"{registry_url}/config/{s}")
    assert r.status_code == 404 and r.json()["error_code"] == 40408
    assert httpx.get(f"{registry_url}/config/{s}?defaultToGlobal=true").json() == {"compatibilityLevel": "BACKWARD"}
    for level in ("FULL_TRANSITIVE", "FORWARD", "NONE"):
        assert httpx.put(f"{registry_url}/config/{s}", json={"compatibility": level}).json() == {"compatibility": level}
    assert httpx.delete(f"{registry_url}/config/{s}").json() == {"compatibilityLevel": "NONE"}

    assert httpx.put(f"{registry_url}/mode/{s}", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
    r = httpx.post(f"{registry_url}/subjects/{s}/versions", json={"schema": record("Ro")})
    assert r.status_code == 422 and r.json()["error_code"] == 42205
    httpx.put(f"{registry_url}/mode/{s}", json={"mode": "READWRITE"})
    assert httpx.post(f"{registry_url}/subjects/{s}/versions", json={"schema": record("Ro")}).status_code == 200
    assert httpx.get(f"{registry_url}/mode").json() == {"mode": "READWRITE"}
    assert httpx.get(f"{registry_url}/schemas/types").json() == ["AVRO"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", "/subjects/{s}/versions", b'{"schema": ', 400, 400),
        ("post", "/subjects/{s}/versions", b"[1, 2]", 400, 400),
        ("post", "/subjects/{s}/versions", json.dumps({"schema": '{"type": "record"}'}).encode(), 422, 42201),
        ("post", "/subjects/{s}/versions", json.dumps({"schema": "not json"}).encode(), 422, 42201),
        ("post", "/subjects/{s}/versions", json.dumps({"nothing": 1}).encode(), 422, 42201),
        ("get", "/subjects/{s}/versions", None, 404, 40401),
        ("get", "/subjects/{s}/versions/latest", None, 404, 40401),
        ("get", "/subjects/{known}/versions/99", None, 404, 40402),
        ("get", "/subjects/{known}/versions/zero", None, 422, 42202),
        ("get", "/subjects/{known}/versions/0", None, 422, 42202),
        ("get", "/schemas/ids/987654321", None, 404, 40403),
        ("post", "/subjects/{known}", json.dumps({"schema": record("Other")}).encode(), 404, 40403),
        ("put", "/config/{s}", json.dumps({"compatibility": "SIDEWAYS"}).encode(), 422, 42203),
        ("put", "/mode", json.dumps({"mode": "WRITEONLY"}).encode(), 422, 42204),
        ("post", "/subjects/{s}/versions", b'{"schema": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413, 413),
        ("get", "/no/such/route", None, 404, 404),
    ],
)
def test_bad_input_gets_the_right_error(  # noqa: PLR0917 - one per parametrize column
    registry_url: str, method: str, path: str, body: bytes | None, status: int, code: int
) -> None:
    known = subject()
    httpx.post(f"{registry_url}/subjects/{known}/versions", json={"schema": record("Known")}).raise_for_status()
    url = registry_url + path.format(s=subject(), known=known)
    r = httpx.request(method, url, content=body, headers={"Content-Type": MEDIA}, timeout=30)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(MEDIA)
    assert r.json()["error_code"] == code and r.json()["message"]
    # ...and it keeps serving.
    assert httpx.get(f"{registry_url}/subjects/{known}/versions").json() == [1]


def test_metrics_and_health(registry_url: str) -> None:
    assert httpx.get(f"{registry_url}/health/ready").json()["status"] == "ok"
    httpx.get(f"{registry_url}/schemas/ids/987654321")
    text = httpx.get(f"{registry_url}/metrics").text
    assert 'eventlake_registry_requests_total{endpoint="/schemas/ids/{schema_id}",method="GET",status="404"}' in text
    assert "eventlake_registry_request_duration_seconds_bucket" in text


def test_restart_keeps_ids_and_versions(stack: Stack, registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    s = subject()
    ids = [
        client.register_schema(s, Schema(record("Dur"), "AVRO")),
        client.register_schema(s, Schema(record("Dur", {"name": "b", "type": "int", "default": 0}), "AVRO")),
    ]
    svc = stack.service("schema_registry")
    assert svc.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{registry_url}/subjects", timeout=2)
    svc.start()
    assert svc.endpoint() == registry_url, "restarted on the same port"
    fresh = SchemaRegistryClient({"url": registry_url})
    assert fresh.get_versions(s) == [1, 2]
    assert [fresh.get_version(s, v).schema_id for v in (1, 2)] == ids
    assert json.loads(fresh.get_schema(ids[1]).schema_str)["fields"][1]["name"] == "b"


def test_writes_need_credentials_when_configured(make_settings: MakeSettings, postgres_url: str) -> None:
    settings: Settings = make_settings(
        "authreg", postgres={"url": postgres_url}, registry={"auth_token": "tok-123", "basic_auth": "ci:pw-456"}
    )
    svc = RegistryService(settings)
    svc.start()
    try:
        url = svc.endpoint()
        assert url is not None
        s = subject()
        body = {"schema": record("Auth")}
        r = httpx.post(f"{url}/subjects/{s}/versions", json=body)
        assert r.status_code == 401 and r.json()["error_code"] == 401
        assert (
            httpx.post(f"{url}/subjects/{s}/versions", json=body, headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        ok = httpx.post(f"{url}/subjects/{s}/versions", json=body, headers={"Authorization": "Bearer tok-123"})
        assert ok.status_code == 200
        # Stock client with basic auth; reads stay open.
        client = SchemaRegistryClient({"url": url, "basic.auth.user.info": "ci:pw-456"})
        client.register_schema(s, Schema(record("Auth", {"name": "z", "type": "int", "default": 0}), "AVRO"))
        assert httpx.get(f"{url}/subjects/{s}/versions").json() == [1, 2]
        assert "pw-456" not in svc.dir.joinpath("registry.log").read_text()
    finally:
        svc.stop()


def test_cli_registers_schema_files(stack: Stack, registry_url: str, tmp_path: Any) -> None:
    src = uuid.uuid4().hex[:8]
    (tmp_path / f"src{src}.avsc").write_text(record("FromFile"))
    env = {"EVENTLAKE_HOME": str(stack.settings.home), "EVENTLAKE_S3_LOCAL": "true", "PATH": "/usr/bin:/bin"}
    cmd = [str(Path(sys.executable).parent / "eventlake"), "schemas", "register", "--dir", str(tmp_path)]
    for _ in range(2):  # idempotent: the second run registers nothing new
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert res.returncode == 0, res.stderr
    assert httpx.get(f"{registry_url}/subjects/raw.src{src}-value/versions").json() == [1]
    (tmp_path / f"src{src}.avsc").write_text(record("FromFile", {"name": "q", "type": "int"}))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert res.returncode == 1 and f"src{src}.avsc" in res.stderr and "409" in res.stderr
