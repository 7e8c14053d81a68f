"""deploy/compose: the Compose specification's JSON schema (vendored in check-jsonschema, PyPI),
dependency and healthcheck rules, the hostnames config/prometheus and config/grafana expect, and
the EVENTLAKE_* environment of every eventlake container read by the typed config model. Each check is
also fed a known-bad file and must fail. (No Docker engine here: the stack is not started.)"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from eventlake.config import Settings
from eventlake.errors import ConfigError
from eventlake.services import Stack, endpoints
from tests.deploy.compose import problems
from tests.deploy.envcheck import load_with, only_env, unknown_variables
from tests.deploy.s3 import bucket_env, buckets
from tests.deploy.tooling import REPO, dotenv, interpolate, output, run, variables

COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"
DEV = COMPOSE_DIR / "docker-compose.dev.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
PROMETHEUS = REPO / "config" / "prometheus" / "prometheus.yml"
DATASOURCES = REPO / "config" / "grafana" / "provisioning" / "datasources" / "datasources.yml"
EVENTLAKE_IMAGES = ("${EVENTLAKE_IMAGE", "${EVENTLAKE_SPARK_IMAGE", "${EVENTLAKE_AIRFLOW_IMAGE")
SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|WEBHOOK|SQL_ALCHEMY_CONN|POSTGRES_URL")


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def env_example() -> dict[str, str]:
    return dotenv(ENV_EXAMPLE)


def schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", *paths)


def service_strings(service: Any) -> list[str]:
    if isinstance(service, dict):
        return [s for value in service.values() for s in service_strings(value)] + [str(k) for k in service]
    if isinstance(service, list):
        return [s for value in service for s in service_strings(value)]
    return [str(service)]


def eventlake_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run eventlake code (the Spark master and worker run only Spark)."""
    return {
        n: s
        for n, s in doc["services"].items()
        if str(s.get("image", "")).startswith(EVENTLAKE_IMAGES) and "environment" in s
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {k: interpolate(str(v), env_example()) for k, v in env.items()}


# --- the Compose specification --------------------------------------------------------------------


def test_compose_files_match_the_compose_specification() -> None:
    result = schema_check(COMPOSE, DEV)
    assert result.returncode == 0, output(result)


def test_compose_schema_rejects_a_bad_depends_on_condition(tmp_path: Path) -> None:
    doc = load(COMPOSE)
    doc["services"]["streaming"]["depends_on"]["topics-init"]["condition"] = "service_happy"
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = schema_check(bad)
    assert result.returncode != 0
    assert "service_happy" in output(result)


def test_dependencies_healthchecks_ports_and_volumes() -> None:
    base = load(COMPOSE)
    assert problems(base) == []
    # every long-running service is waited on by health, one-shots by completion
    assert base["services"]["streaming"]["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"


def test_dependency_rules_reject_bad_files() -> None:
    base = load(COMPOSE)
    bad = copy.deepcopy(base)
    bad["services"]["streaming"]["depends_on"]["kafak"] = {"condition": "service_healthy"}
    del bad["services"]["minio"]["healthcheck"]
    bad["services"]["kafka"]["depends_on"] = {"streaming": {"condition": "service_healthy"}}
    bad["services"]["dashboard"]["ports"] = ["8050:8050"]
    bad["services"]["grafana"]["volumes"].append("grafana-plugins:/var/lib/grafana/plugins")
    found = "\n".join(problems(bad))
    assert "depends_on kafak, which is not a service" in found
    assert "minio has no healthcheck" in found
    assert "minio: a long-running service without a healthcheck" in found
    assert "depends_on cycle" in found and "kafka" in found
    assert "published on every interface" in found
    assert "grafana-plugins is not declared" in found


def test_images_are_pinned() -> None:
    for name, service in load(COMPOSE)["services"].items():
        image = interpolate(service["image"], env_example())
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest" and re.search(r"\d|^dev$", tag), f"{name}: {image} is not pinned"
        if "build" in service:
            assert (REPO / service["build"]["dockerfile"]).is_file(), name


# --- hostnames that config/ relies on -------------------------------------------------------------


def test_prometheus_scrapes_compose_services_on_the_ports_they_serve() -> None:
    services = load(COMPOSE)["services"]
    prometheus = load(PROMETHEUS)
    targets = [t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    targets += [
        t for am in prometheus["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]
    ]
    assert len(targets) >= 6  # the five eventlake jobs and Alertmanager
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in services, f"{target}: no Compose service {host}"
        strings = [interpolate(s, env_example()) for s in service_strings(services[host])]
        assert any(re.search(rf"(?<!\d){port}(?!\d)", s) for s in strings), f"{target}: {host} does not serve {port}"


def test_grafana_datasources_point_at_compose_services() -> None:
    services = load(COMPOSE)["services"]
    for ds in load(DATASOURCES)["datasources"]:
        host = re.sub(r"^\w+://", "", ds["url"]).split(":")[0]
        assert host in services, ds["name"]
    grafana = services["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "../../config/grafana/provisioning"
    assert mounts["/var/lib/grafana/dashboards"] == "../../config/grafana/dashboards"
    assert "EVENTLAKE_POSTGRES_PASSWORD" in grafana["environment"]  # read by datasources.yml


def test_bind_mount_sources_exist() -> None:
    for path in (COMPOSE, DEV):
        for name, service in load(path)["services"].items():
            for volume in service.get("volumes", []):
                source = volume.split(":", 1)[0]
                if source.startswith("."):
                    assert (COMPOSE_DIR / source).exists(), f"{path.name}: {name}: {source}"


# --- the eventlake containers' settings -----------------------------------------------------------


def _settings(service: dict[str, Any]) -> Settings:
    env = environment(service)
    assert not unknown_variables(set(env)), sorted(unknown_variables(set(env)))
    return load_with(env)


def test_eventlake_environment_is_read_by_the_config_model() -> None:
    services = eventlake_services(load(COMPOSE))
    assert {"schema-registry", "topics-init", "producer", "dashboard", "streaming", "airflow", "minio-init"} <= set(
        services
    )
    for name, service in services.items():
        settings = _settings(service)
        assert settings.kafka.bootstrap == "kafka:9092", name
        assert settings.registry.url == "http://schema-registry:8081", name
        assert (
            settings.postgres.url is not None and "@postgres:5432/eventlake" in settings.postgres.url.get_secret_value()
        )
        assert settings.s3.endpoint == "http://minio:9000" and settings.lake_uri == "s3://eventlake/lake", name
        assert settings.registry.auth_token is not None, name  # the registry refuses open writes off loopback
        # every platform endpoint is external: no eventlake command in a container starts a local server
        with only_env({**environment(service), "EVENTLAKE_HOME": "/nonexistent/eventlake-home"}):
            live = endpoints(settings)
            external = {svc.name for svc in Stack(settings).active() if not svc.managed}
        assert (live.kafka_bootstrap, live.registry_url, live.s3_endpoint) == (
            "kafka:9092",
            "http://schema-registry:8081",
            "http://minio:9000",
        ), name
        assert {"kafka", "postgres", "schema_registry", "connect"} <= external, name
    streaming = _settings(services["streaming"])
    assert (streaming.metrics.host, streaming.metrics.streaming_port, streaming.metrics.serving_port) == (
        "0.0.0.0",
        9108,
        9110,
    )
    assert _settings(services["producer"]).metrics.producer_port == 9109


def test_config_model_check_rejects_a_misspelt_variable() -> None:
    for typo, field in (("EVENTLAKE_METRICS_PRODUCER_PROT", r"metrics\.producer_prot"), ("EVENTLAKE_LOGLEVEL", None)):
        service = copy.deepcopy(load(COMPOSE)["services"]["producer"])
        service["environment"][typo] = "9109"
        with pytest.raises(AssertionError, match=typo):
            _settings(service)
        if field is not None:  # a nested typo is an error of the model itself, too
            with pytest.raises(ConfigError, match=field):
                load_with(environment(service))


def test_secrets_come_from_the_env_file_only() -> None:
    example = env_example()
    for path in (COMPOSE, DEV):
        for name, service in load(path)["services"].items():
            for key, value in (service.get("environment") or {}).items():
                if SECRET_WORDS.search(key):
                    assert variables(str(value)), f"{path.name}: {name}.{key} must come from .env, not the file"
    secrets = {k: v for k, v in example.items() if SECRET_WORDS.search(k) or k.endswith("_KEY_ID")}
    assert secrets and all(v.startswith("change-me") for v in secrets.values()), secrets


def test_env_example_defines_every_required_variable_and_nothing_unused() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{(\w+):\?", text))
    used = variables(text) | variables(DEV.read_text(encoding="utf-8"))
    example = env_example()
    assert required <= set(example), required - set(example)
    assert set(example) <= used, set(example) - used
    for name in required:  # and the interpolation fails without them, as docker compose would
        with pytest.raises(KeyError, match=name):
            interpolate(f"${{{name}:?set {name}}}", {})


def test_dev_override_mounts_the_local_code() -> None:
    base, dev = load(COMPOSE)["services"], load(DEV)["services"]
    assert set(dev) <= set(base)
    for name, service in dev.items():
        mounts = {v.split(":")[1]: v for v in service["volumes"]}
        if name == "airflow":
            assert mounts["/opt/eventlake/airflow/dags"].startswith("../../airflow/dags:")
            continue
        assert service["environment"]["PYTHONPATH"] == "/opt/eventlake/src", name
        assert mounts["/opt/eventlake/src"] == "../../src:/opt/eventlake/src:ro", name
    assert {"streaming", "dashboard", "producer", "schema-registry"} <= set(dev)


# --- the bucket init steps, run for real against an S3 API (moto's server) --------------------------


def test_compose_bucket_init_creates_the_lake_bucket_once(s3_api: str) -> None:
    """The minio-init one-shot's script, as Compose runs it (its command and environment)."""
    service = load(COMPOSE)["services"]["minio-init"]
    assert service["command"] == ["python", "/opt/eventlake/init/create-bucket.py"]
    assert "./init:/opt/eventlake/init:ro" in service["volumes"]
    script = COMPOSE_DIR / "init" / "create-bucket.py"
    env = bucket_env(s3_api, "compose-lake")
    first = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and "compose-lake" in buckets(s3_api)
    again = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and "exists" in again.stdout
    unset = {k: v for k, v in env.items() if k != "EVENTLAKE_S3_SECRET_ACCESS_KEY"}
    refused = subprocess.run(
        [sys.executable, script], env=unset, capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 1 and "must be set" in refused.stderr
