"""Compatibility levels over Avro's schema-resolution rules: the classic evolution cases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventlake.registry.compat import Level, canonical, check
from eventlake.registry.errors import RegistryError


def rec(*fields: dict[str, Any], name: str = "Event") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "t", "fields": list(fields)})


ID = {"name": "id", "type": "string"}
V1 = rec(ID)


def ok(new: str, old: str, level: Level) -> bool:
    return check(new, [(1, old)], level) == []


def test_add_field_with_default_is_backward_and_forward() -> None:
    v2 = rec(ID, {"name": "n", "type": "int", "default": 0})
    assert ok(v2, V1, Level.BACKWARD) and ok(v2, V1, Level.FORWARD) and ok(v2, V1, Level.FULL)


def test_add_field_without_default_breaks_backward_only() -> None:
    v2 = rec(ID, {"name": "n", "type": "int"})
    assert not ok(v2, V1, Level.BACKWARD)
    assert ok(v2, V1, Level.FORWARD)
    assert ok(v2, V1, Level.NONE)


def test_remove_field_without_default_breaks_forward() -> None:
    v1 = rec(ID, {"name": "n", "type": "int"})
    assert ok(V1, v1, Level.BACKWARD)
    assert not ok(V1, v1, Level.FORWARD)


def test_rename_via_alias_is_backward() -> None:
    v1 = rec({"name": "user", "type": "string"})
    renamed = rec({"name": "user_id", "type": "string", "aliases": ["user"]})
    plain_rename = rec({"name": "user_id", "type": "string"})
    assert ok(renamed, v1, Level.BACKWARD)
    assert not ok(plain_rename, v1, Level.BACKWARD)


def test_int_to_long_promotion_is_backward_not_forward() -> None:
    v1 = rec({"name": "n", "type": "int"})
    v2 = rec({"name": "n", "type": "long"})
    assert ok(v2, v1, Level.BACKWARD)
    assert not ok(v2, v1, Level.FORWARD)


def test_enum_symbols() -> None:
    def enum(*symbols: str) -> str:
        return rec({"name": "e", "type": {"type": "enum", "name": "E", "symbols": list(symbols)}})

    assert ok(enum("A", "B", "C"), enum("A", "B"), Level.BACKWARD), "reader knows every old symbol"
    assert not ok(enum("A"), enum("A", "B"), Level.BACKWARD), "a removed symbol can't be read"
    assert not ok(enum("A", "B", "C"), enum("A", "B"), Level.FORWARD)


def test_union_widening() -> None:
    v1 = rec({"name": "x", "type": ["null", "string"], "default": None})
    v2 = rec({"name": "x", "type": ["null", "string", "int"], "default": None})
    assert ok(v2, v1, Level.BACKWARD)
    assert not ok(v2, v1, Level.FORWARD)


def test_transitive_checks_every_version() -> None:
    v1 = rec(ID, {"name": "n", "type": "int"})
    v2 = rec(ID)  # removed n: fine against v1 backward
    v3 = rec(ID, {"name": "n", "type": "string", "default": "x"})  # n again, other type
    history = [(1, v1), (2, v2)]
    assert check(v3, history, Level.BACKWARD) == []  # only latest (v2) is checked
    reasons = check(v3, history, Level.BACKWARD_TRANSITIVE)
    assert reasons and "version 1" in reasons[0]


def test_invalid_schema_is_42201() -> None:
    with pytest.raises(RegistryError) as err:
        canonical('{"type": "record", "name": "x"}')
    assert err.value.error_code == 42201 and err.value.status == 422


def test_canonical_form_ignores_whitespace_and_keeps_defaults() -> None:
    a = canonical('{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":1}]}')
    b = canonical('{ "type" : "record",\n "name" : "A", "fields" : [ {"name":"x", "type":"int", "default": 1} ] }')
    assert a == b and '"default":1' in a
