"""Every configuration file the platform ships is read by the code or tool that uses it: the typed
settings model, the data-quality loader, fastavro, amtool; and every file under config/ has such a
validator (Prometheus and Grafana ones in tests/observability/test_config_as_code.py). Each loader is
also given a broken file and must refuse it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fastavro
import pytest
import yaml
from fastavro.schema import SchemaParseException, UnknownType

from eventlake.errors import ConfigError
from eventlake.quality.rules import load_quality
from tests.deploy.envcheck import load_with
from tests.deploy.tooling import REPO, output, run

CONFIG = REPO / "config"
SCHEMAS = REPO / "data" / "schemas"
ALERTMANAGER = CONFIG / "alertmanager" / "alertmanager.yml"
#: every file in config/ and the test that validates it
VALIDATED = {
    "eventlake.yaml": "test_config_files.py: the settings model",
    "quality.yaml": "test_config_files.py: load_quality",
    "alertmanager/alertmanager.yml": "test_config_files.py: amtool check-config",
    "prometheus/prometheus.yml": "test_config_as_code.py: promtool check config",
    "prometheus/rules/eventlake.yml": "test_config_as_code.py: promtool check rules",
    "prometheus/tests/eventlake_test.yml": "test_config_as_code.py: promtool test rules",
    "grafana/generate.py": "test_config_as_code.py: dashboards equal its output",
    "grafana/provisioning/datasources/datasources.yml": "test_config_as_code.py: provisioning",
    "grafana/provisioning/dashboards/dashboards.yml": "test_config_as_code.py: provisioning",
    "grafana/dashboards/data-quality.json": "test_config_as_code.py: dashboards",
    "grafana/dashboards/pipeline-overview.json": "test_config_as_code.py: dashboards",
    "grafana/dashboards/source-kpis.json": "test_config_as_code.py: dashboards",
    "grafana/dashboards/streaming-health.json": "test_config_as_code.py: dashboards",
}


def test_every_config_file_has_a_validator() -> None:
    shipped = {
        p.relative_to(CONFIG).as_posix() for p in CONFIG.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped == set(VALIDATED), f"add a validator for {shipped - set(VALIDATED)}"


def test_eventlake_yaml_is_loaded_by_the_settings_model() -> None:
    path = CONFIG / "eventlake.yaml"
    raw = yaml.safe_load(path.read_text())
    settings = load_with({"EVENTLAKE_CONFIG": str(path)})
    assert settings.kafka.default_partitions == raw["kafka"]["default_partitions"]
    assert settings.postgres.database == raw["postgres"]["database"]
    assert settings.s3.bucket == raw["s3"]["bucket"]
    assert settings.registry.enabled is raw["registry"]["enabled"]


def test_settings_model_refuses_a_broken_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "eventlake.yaml"
    bad.write_text((CONFIG / "eventlake.yaml").read_text().replace("default_partitions: 6", "default_partitions: -6"))
    with pytest.raises(ConfigError, match=r"kafka\.default_partitions"):
        load_with({"EVENTLAKE_CONFIG": str(bad)})


def test_quality_rules_are_loaded() -> None:
    settings = load_with({"EVENTLAKE_QUALITY_RULES_FILE": str(CONFIG / "quality.yaml")})
    quality = load_quality(settings)
    assert quality.detectors
    assert {d.table for d in quality.detectors} == {
        "gold_iot_sensors_1m",
        "gold_transactions_1m",
        "gold_user_activity_1m",
    }


def test_quality_loader_refuses_a_broken_rules_file(tmp_path: Path) -> None:
    bad = tmp_path / "quality.yaml"
    bad.write_text((CONFIG / "quality.yaml").read_text().replace("field: unit,", "field: voltage,"))
    with pytest.raises(ConfigError, match="voltage"):
        load_quality(load_with({"EVENTLAKE_QUALITY_RULES_FILE": str(bad)}))


@pytest.mark.parametrize("avsc", sorted(SCHEMAS.glob("*.avsc")), ids=lambda p: p.name)
def test_avro_schemas_parse(avsc: Path) -> None:
    schema = fastavro.parse_schema(json.loads(avsc.read_text()))
    assert isinstance(schema, dict)
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["event_id"]["type"] == "string"
    assert fields["event_time"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}


def test_fastavro_refuses_broken_schemas() -> None:
    good = json.loads((SCHEMAS / "iot_sensors.avsc").read_text())
    assert len(sorted(SCHEMAS.glob("*.avsc"))) == 3
    unknown = json.loads(json.dumps(good))
    unknown["fields"][0]["type"] = "strng"
    with pytest.raises(UnknownType):
        fastavro.parse_schema(unknown)
    nameless = {k: v for k, v in good.items() if k != "name"}
    with pytest.raises(SchemaParseException):
        fastavro.parse_schema(nameless)


def test_alertmanager_config_is_valid() -> None:
    result = run("amtool", "check-config", ALERTMANAGER)
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in output(result)


def test_amtool_refuses_a_route_to_an_undefined_receiver(tmp_path: Path) -> None:
    bad = tmp_path / "alertmanager.yml"
    shutil.copy(ALERTMANAGER, bad)
    bad.write_text(bad.read_text().replace("  receiver: default\n  group_by", "  receiver: pager\n  group_by"))
    result = run("amtool", "check-config", bad)
    assert result.returncode != 0
    assert 'undefined receiver "pager"' in output(result)
