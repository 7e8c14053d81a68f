"""Hostile or odd requests to the real registry process: a 4xx with a Confluent error body, never a 500.

Each case here was a 500 before (the crash it caused is named in its test)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest


def _subject() -> str:
    return f"t.{uuid.uuid4().hex[:10]}-value"


SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "event_id", "type": "string"}]})


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_json_is_a_400_not_a_recursion_error(registry_url: str, depth: int) -> None:
    """RecursionError in ``json.loads``: was a 500."""
    body = ('{"schema": ' + "[" * depth + "]" * depth + "}").encode()
    resp = httpx.post(
        f"{registry_url}/subjects/{_subject()}/versions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json() == {"error_code": 400, "message": "Malformed JSON request body: nested too deeply"}


def test_deeply_nested_schema_text_is_an_invalid_schema(registry_url: str) -> None:
    """The schema string itself nested past the parser's stack (RecursionError inside Avro's parse)."""
    resp = httpx.post(f"{registry_url}/subjects/{_subject()}/versions", json={"schema": "[" * 50_000}, timeout=30)
    assert resp.status_code == 422 and resp.json()["error_code"] == 42201, resp.text


def test_a_lone_surrogate_in_an_error_message_is_escaped(registry_url: str) -> None:
    """A message echoing ``"\\ud800"`` (valid JSON) could not be encoded as UTF-8: was a 500."""
    resp = httpx.post(
        f"{registry_url}/subjects/{_subject()}/versions",
        content=b'{"schema": "\\"\\ud800\\""}',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 422 and resp.json()["error_code"] == 42201, resp.text
    compat = httpx.put(
        f"{registry_url}/config/{_subject()}",
        content=b'{"compatibility": "\\udfff"}',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert compat.status_code == 422 and compat.json()["error_code"] == 42203, compat.text


def test_out_of_range_schema_id_is_a_422(registry_url: str) -> None:
    """An id past PostgreSQL's integer (NumericValueOutOfRange): was a 500."""
    for sid in (2**31, 2**63, -1):
        resp = httpx.get(f"{registry_url}/schemas/ids/{sid}", timeout=30)
        assert resp.status_code == 422 and resp.json()["error_code"] == 422, (sid, resp.text)


def test_a_nul_character_in_a_subject_is_a_400(registry_url: str) -> None:
    """PostgreSQL text cannot hold NUL (psycopg.DataError): was a 500."""
    resp = httpx.post(f"{registry_url}/subjects/a%00b/versions", json={"schema": SCHEMA}, timeout=30)
    assert resp.status_code == 400 and resp.json()["error_code"] == 400, resp.text
    assert httpx.get(f"{registry_url}/subjects/a%00b/versions", timeout=30).status_code in (400, 404)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"schema": 5}, 42201),
        ({"schema": SCHEMA, "references": [{"name": "x", "subject": "s", "version": 1}]}, 42201),
        ({"schema": SCHEMA, "schemaType": None, "metadata": None, "ruleSet": None}, 200),  # what clients send
    ],
)
def test_register_body_is_validated(registry_url: str, body: dict[str, object], code: int) -> None:
    resp = httpx.post(f"{registry_url}/subjects/{_subject()}/versions", json=body, timeout=30)
    assert (resp.status_code if code == 200 else resp.json()["error_code"]) == code, resp.text


def test_openapi_documents_the_request_bodies_and_errors(registry_url: str) -> None:
    spec = httpx.get(f"{registry_url}/openapi.json", timeout=30).json()
    paths = spec["paths"]

    def body_schema(path: str, method: str) -> dict[str, object]:
        op = paths[path][method]
        content = op["requestBody"]["content"]
        assert op["requestBody"]["required"] is True
        assert set(content) == {"application/vnd.schemaregistry.v1+json", "application/json"}
        schema: dict[str, object] = content["application/json"]["schema"]
        return schema

    register = body_schema("/subjects/{subject}/versions", "post")
    assert register["required"] == ["schema"] and "schemaType" in register["properties"]  # type: ignore[operator]
    for path in ("/subjects/{subject}", "/compatibility/subjects/{subject}/versions"):
        assert body_schema(path, "post")["required"] == ["schema"]
    config = body_schema("/config/{subject}", "put")
    assert "BACKWARD" in config["properties"]["compatibility"]["enum"]  # type: ignore[index]
    assert body_schema("/mode", "put")["properties"]["mode"]["enum"] == ["READWRITE", "READONLY"]  # type: ignore[index]
    errors = paths["/subjects/{subject}/versions"]["post"]["responses"]
    assert {"404", "409", "422", "503"} <= set(errors)
    assert errors["422"]["content"]["application/vnd.schemaregistry.v1+json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
