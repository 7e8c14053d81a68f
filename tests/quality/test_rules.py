"""The rules file: the shipped one loads; bad ones stop start-up with the file, line and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventlake.config import Settings
from eventlake.errors import ConfigError
from eventlake.quality.checks import require_java_regexes
from eventlake.quality.rules import load_quality
from tests.conftest import MakeSettings


def rules(make_settings: MakeSettings, tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "quality.yaml"
    path.write_text(text)
    return make_settings("rules", quality={"rules_file": path})


def test_shipped_rules_load(make_settings: MakeSettings) -> None:
    quality = load_quality(make_settings("rules"))
    iot = quality.source("iot_sensors")
    names = [r.rule_name for r in iot.rules]
    # The contract's rules come first, critical, named as quarantine reasons.
    assert names[:2] == ["null_required:event_id", "null_required:event_time"]
    assert {"null_required:value", "out_of_range:value", "unique:event_id", "freshness"} <= set(names)
    assert iot.severity("out_of_range:value") == "critical"
    assert iot.severity("allowed_values:unit") == "warning"
    assert {d.table for d in quality.detectors} >= {"gold_iot_sensors_1m", "gold_transactions_1m"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sources:\n  iot_sensors:\n    - {type: unique}\n    - {type: not_empty, field: unit}\n",
            ":4: sources.iot_sensors.1: Input tag 'not_empty' found using 'type' does not match",
        ),
        (
            "sources:\n  transactions:\n    - type: range\n      field: amount\n      min: 10\n      max: 1\n",
            ":3: sources.transactions.0.range: Value error, min 10.0 > max 1.0",
        ),
        (
            "sources:\n  iot_sensors:\n    - type: not_null\n      field: voltage\n",
            ":4: sources.iot_sensors.0.field: unknown field 'voltage' of iot_sensors",
        ),
        (
            "sources:\n  weather:\n    - {type: unique}\n",
            ":2: sources.weather: unknown source",
        ),
        (
            "sources:\n  iot_sensors:\n    - {type: regex, field: unit, pattern: '(unclosed'}\n",
            ":3: sources.iot_sensors.0.regex.pattern: Value error, not a regular expression",
        ),
        (
            "sources:\n  iot_sensors:\n    - {type: range, field: value, min: 0, max: 1, colour: red}\n",
            ":3: sources.iot_sensors.0.range.colour: Extra inputs are not permitted",
        ),
        (
            "detectors:\n  - {name: d, table: gold_iot_sensors_1m, series: [device_id], value: median}\n",
            ":2: detectors.0.value: 'median' is not an aggregate of gold_iot_sensors_1m",
        ),
        (
            "sources:\n  iot_sensors:\n    - {type: not_null, field: unit, name: 'null_required:value'}\n",
            ":3: sources.iot_sensors.0: rule names must be unique: null_required:value",
        ),
        ("sources: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_rules_name_the_line(make_settings: MakeSettings, tmp_path: Path, text: str, expected: str) -> None:
    settings = rules(make_settings, tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_quality(settings)
    message = str(err.value)
    assert message.startswith(f"{settings.quality.rules_file}")
    assert expected in message, message


def test_missing_rules_file(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings("rules", quality={"rules_file": tmp_path / "nope.yaml"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_quality(settings)


def test_a_pattern_only_python_accepts_stops_the_pipeline_before_a_query_starts(
    make_settings: MakeSettings, tmp_path: Path, spark: Any
) -> None:
    # (?P<name>...) is Python's named group; Java spells it (?<name>...) and rejects this one.
    text = 'sources:\n  user_activity:\n    - {type: regex, field: country, pattern: "^(?P<cc>[A-Z]{2})$"}\n'
    settings = rules(make_settings, tmp_path, text)
    quality = load_quality(settings)  # Python's re accepts it
    with pytest.raises(ConfigError) as err:
        require_java_regexes(spark, quality, settings.quality.rules_file)
    message = str(err.value)
    assert "\n" not in message and "regex:country of user_activity" in message and "not a Java regular" in message
    require_java_regexes(spark, load_quality(make_settings("rules")), settings.quality.rules_file)  # shipped: fine
