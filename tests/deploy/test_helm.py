"""deploy/helm/eventlake: helm lint, helm template for dev and prod, kubeconform -strict against the
Kubernetes JSON schemas, and what the rendered manifests must say (probes, secrets, external services,
settings the config model reads). Each validator is also fed a known-bad input and must fail."""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from eventlake.errors import ConfigError
from tests.deploy.envcheck import load_with, unknown_variables
from tests.deploy.kube import KUBE_VERSIONS, build_schemas
from tests.deploy.tooling import REPO, output, run

CHART = REPO / "deploy" / "helm" / "eventlake"
VALUES = {"dev": CHART / "values-dev.yaml", "prod": CHART / "values-prod.yaml"}
KUBE = KUBE_VERSIONS[-1]
EVENTLAKE_CONTAINERS = {"registry", "dashboard", "streaming", "producer", "topics", "bucket"}
HTTP_SERVICES = {"registry", "dashboard", "streaming", "producer"}


@pytest.fixture(scope="module")
def schema_location(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_schemas(tmp_path_factory.mktemp("kube-schemas"))


def template(*args: str, kube: str = KUBE) -> subprocess.CompletedProcess[str]:
    return run("helm", "template", "eventlake", CHART, "--namespace", "eventlake", "--kube-version", kube, *args)


@functools.cache
def render(env: str, *args: str, kube: str = KUBE) -> str:
    result = template("-f", str(VALUES[env]), *args, kube=kube)
    assert result.returncode == 0, output(result)
    return str(result.stdout)


def manifests(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kubeconform(schema_location: Path, *paths: Path, kube: str = KUBE) -> subprocess.CompletedProcess[str]:
    return run(
        "kubeconform",
        "-strict",
        "-summary",
        "-kubernetes-version",
        kube,
        "-schema-location",
        str(schema_location),
        *paths,
    )


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") if doc["kind"] in {"Deployment", "StatefulSet", "Job"} else None
        for container in (pod or {}).get("containers", []):
            yield doc, container


# --- helm lint ------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", sorted(VALUES))
def test_helm_lint(env: str) -> None:
    result = run("helm", "lint", "--strict", CHART, "-f", VALUES[env], "--kube-version", KUBE)
    assert result.returncode == 0, output(result)
    assert "0 chart(s) failed" in output(result)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--set", "registry.replicas=two"], "got string, want integer"),
        (["--set", "registy.replicas=2"], "additional properties 'registy' not allowed"),
        (["--set", "image.tag=latest"], "/image/tag"),
        (["--set", "config.extraEnv.KAFKA_PORT=1"], "does not match pattern '^EVENTLAKE_"),
    ],
    ids=["string replicas", "misspelt key", "latest tag", "extraEnv not EVENTLAKE_"],
)
def test_helm_lint_rejects_bad_values(args: list[str], reason: str) -> None:
    result = run("helm", "lint", "--strict", CHART, "-f", VALUES["dev"], "--kube-version", KUBE, *args)
    assert result.returncode != 0, output(result)
    assert reason in output(result)


def test_external_kafka_without_bootstrap_fails_to_render() -> None:
    result = template("-f", str(VALUES["prod"]), "--set", "kafka.bootstrap=")
    assert result.returncode != 0
    assert "kafka.bootstrap is required when kafka.external is true" in output(result)


def test_missing_existing_secret_fails_to_render() -> None:
    result = template("-f", str(VALUES["dev"]), "--set", "secrets.existingSecret=")
    assert result.returncode != 0
    assert "existingSecret" in output(result)


# --- kubeconform ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_rendered_chart_is_valid_kubernetes(kube: str, schema_location: Path, tmp_path: Path) -> None:
    """dev and prod values, rendered for the oldest supported and a current Kubernetes, in one run."""
    files = []
    for env in sorted(VALUES):
        rendered = tmp_path / f"{env}.yaml"
        rendered.write_text(render(env, kube=kube), encoding="utf-8")
        assert len(manifests(rendered.read_text())) > 8
        files.append(rendered)
    result = kubeconform(schema_location, *files, kube=kube)
    assert result.returncode == 0, output(result)
    assert "Invalid: 0, Errors: 0, Skipped: 0" in output(result), output(result)


def test_kubeconform_rejects_a_value_that_renders_an_invalid_manifest(schema_location: Path, tmp_path: Path) -> None:
    # podSecurityContext is passed through as is: helm accepts the value, Kubernetes would not
    rendered = tmp_path / "bad.yaml"
    docs = manifests(render("dev", "--set", "podSecurityContext.runAsUser=root"))
    registry = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-registry")]
    rendered.write_text(yaml.safe_dump_all(registry), encoding="utf-8")
    result = kubeconform(schema_location, rendered)
    assert result.returncode != 0
    assert "runAsUser" in output(result) and "want null or integer" in output(result)


def test_kubeconform_rejects_unknown_fields_and_a_bad_service_monitor(schema_location: Path, tmp_path: Path) -> None:
    docs = manifests(render("prod"))
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/health/ready"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([monitor, deployment]), encoding="utf-8")
    result = kubeconform(schema_location, bad)
    assert result.returncode != 0
    assert "Invalid: 2" in output(result), output(result)
    assert "intervall" in output(result) and "paht" in output(result)


# --- what the manifests say -----------------------------------------------------------------------


@pytest.mark.parametrize("env", sorted(VALUES))
def test_every_eventlake_container_probes_health_and_runs_hardened(env: str) -> None:
    docs = manifests(render(env))
    seen = set()
    for doc, container in containers(docs):
        if container["name"] not in EVENTLAKE_CONTAINERS:
            continue
        seen.add(container["name"])
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, container["name"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, container["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, container["name"]
        assert container["resources"]["requests"], container["name"]
        if container["name"] in HTTP_SERVICES:
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live", container["name"]
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready", container["name"]
            assert container["startupProbe"]["httpGet"]["path"] == "/health/live", container["name"]
    expected = HTTP_SERVICES if env == "dev" else HTTP_SERVICES - {"producer"}  # the demo feed runs in dev only
    assert {name for name in seen if name in HTTP_SERVICES} == expected


def test_dev_bundles_the_platform_and_prod_uses_external_services() -> None:
    def statefulsets(env: str) -> set[str]:
        return {
            d["metadata"]["labels"]["app.kubernetes.io/component"]
            for d in manifests(render(env))
            if d["kind"] == "StatefulSet"
        }

    assert statefulsets("dev") == {"kafka", "postgresql", "minio"}
    assert statefulsets("prod") == set()


def test_prod_has_replicas_disruption_budgets_and_a_service_monitor() -> None:
    docs = manifests(render("prod"))
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "Deployment"}
    assert deployments["registry"]["spec"]["replicas"] == 2
    assert deployments["dashboard"]["spec"]["replicas"] == 2
    assert deployments["streaming"]["spec"]["replicas"] == 1
    assert deployments["streaming"]["spec"]["strategy"]["type"] == "Recreate"
    pdbs = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert pdbs == {"registry", "dashboard"}
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics", "serving"}
    assert not [d for d in manifests(render("dev")) if d["kind"] in {"ServiceMonitor", "PodDisruptionBudget"}]


def _env_of(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the pod would see it, with secrets replaced by placeholders."""
    config = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= config[source["configMapRef"]["name"]]
    for item in container.get("env", []):
        if "value" in item:
            value = item["value"]
            for name, current in env.items():
                value = value.replace(f"$({name})", current)
            env[item["name"]] = value
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            if not ref.get("optional"):
                env[item["name"]] = f"secret-{ref['key']}"
    return env


@pytest.mark.parametrize("env", sorted(VALUES))
def test_rendered_settings_are_read_by_the_config_model(env: str) -> None:
    docs = manifests(render(env))
    checked = 0
    for _doc, container in containers(docs):
        if container["name"] not in EVENTLAKE_CONTAINERS:
            continue
        variables = _env_of(docs, container)
        assert not unknown_variables(set(variables)), container["name"]
        settings = load_with(variables)
        assert settings.kafka.bootstrap, container["name"]
        assert settings.postgres.url is not None and settings.registry.url is not None, container["name"]
        assert settings.lake_uri.startswith("s3://"), container["name"]
        assert settings.metrics.host == "0.0.0.0"
        if container["name"] == "streaming":
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert (settings.metrics.streaming_port, settings.metrics.serving_port) == (
                ports["metrics"],
                ports["serving"],
            )
        checked += 1
    assert checked >= 4


def test_settings_check_rejects_a_misspelt_variable() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.bootstraps"):
        load_with({"EVENTLAKE_KAFKA_BOOTSTRAPS": "kafka:9092"})
    assert unknown_variables({"EVENTLAKE_LOGLEVEL", "EVENTLAKE_LOG_LEVEL", "EVENTLAKE_KAFKA"}) == {
        "EVENTLAKE_LOGLEVEL",
        "EVENTLAKE_KAFKA",
    }


SECRET_WORDS = ("password", "token", "secret", "webhook")


def secrets_in_values(node: Any, where: str = "") -> list[str]:
    """Paths of values that look like credentials; only the Secret's name and key names may be set."""
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in secrets_in_values(value, f"{where}.{key}")]
    leaf = where.rsplit(".", 1)[-1].lower()
    if where.startswith(".secrets.") or leaf == "imagepullsecrets":
        return []
    if any(word in leaf for word in SECRET_WORDS) and isinstance(node, str) and node:
        return [where]
    if isinstance(node, str) and re.search(r"://[^/\s:@]+:[^@\s]+@", node):
        return [where]  # a URL with a password in it
    return []


def test_values_files_hold_no_secret() -> None:
    for path in [CHART / "values.yaml", *VALUES.values()]:
        assert secrets_in_values(yaml.safe_load(path.read_text())) == [], path.name
    bad = {"config": {"smtpPassword": "hunter2", "extraEnv": {"EVENTLAKE_POSTGRES_URL": "postgresql://u:pw@db/x"}}}
    assert secrets_in_values(bad) == [".config.smtpPassword", ".config.extraEnv.EVENTLAKE_POSTGRES_URL"]
    assert (
        secrets_in_values({"secrets": {"existingSecret": "eventlake-secrets"}, "s3": {"credentialsFromSecret": True}})
        == []
    )
