"""Property tests of the rules-file parser (``quality.rules.load_quality``): any input gives a
``ConfigError`` with a one-line message (or a valid rule set), never another exception."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlake.config import Settings
from eventlake.errors import ConfigError
from eventlake.quality.rules import Quality, load_quality
from tests.conftest import MakeSettings

FUZZ = settings(
    max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)
KEYS = ["sources", "detectors", "iot_sensors", "transactions", "user_activity", "type", "field", "name", "min", "max",
        "values", "pattern", "severity", "window_s", "max_lag_s", "min_rows", "table", "series", "value", "history",
        "not_null", "range", "allowed_values", "regex", "unique", "freshness", "volume", "schema_drift", "unit",
        "gold_iot_sensors_1m", "device_id", "max_value", "critical", "warning"]  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.sampled_from(KEYS), st.text(max_size=20)
)
TREES = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=30,
)


@pytest.fixture(scope="module")
def rules_file(make_settings: MakeSettings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    path = tmp_path_factory.mktemp("fuzz-rules") / "quality.yaml"
    path.write_text("")
    return path, make_settings("fuzz-rules", quality={"rules_file": path})


def _verdict(rules: tuple[Path, Settings], data: bytes) -> Quality | ConfigError:
    path, s = rules
    path.write_bytes(data)
    try:
        return load_quality(s)
    except ConfigError as err:
        assert str(path) in str(err) and "\n" not in str(err), repr(str(err))  # one line, naming the file
        return err


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_rules_or_a_config_error(rules_file: tuple[Path, Settings], text: str) -> None:
    _verdict(rules_file, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_are_rules_or_a_config_error(rules_file: tuple[Path, Settings], data: bytes) -> None:
    _verdict(rules_file, data)


@FUZZ
@given(TREES)
def test_any_yaml_tree_is_rules_or_a_config_error(rules_file: tuple[Path, Settings], tree: object) -> None:
    _verdict(rules_file, yaml.safe_dump({"sources": tree} if isinstance(tree, list) else tree).encode())


@FUZZ
@given(st.lists(TREES, max_size=3), st.sampled_from(["iot_sensors", "transactions", "user_activity"]))
def test_any_rule_list_of_a_source_is_rules_or_a_config_error(
    rules_file: tuple[Path, Settings], rules: list[object], source: str
) -> None:
    _verdict(rules_file, yaml.safe_dump({"sources": {source: rules}}).encode())


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000,  # nested past the parser's stack
        "a: &a [*a]\n",  # a recursive alias
        "a: &a ['x','x','x','x','x','x','x','x','x']\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",  # aliases of aliases (a small "billion laughs")
        "sources: !!python/object/apply:os.system ['true']\n",  # safe_load refuses it
        "\ufeffsources: {}\n---\nsources: {}\n",
    ],
)
def test_hostile_yaml_is_a_config_error(rules_file: tuple[Path, Settings], text: str) -> None:
    assert isinstance(_verdict(rules_file, text.encode()), ConfigError)
