"""Local JSON schemas for kubeconform: Kubernetes' from the kubernetes-validate wheel, ServiceMonitor
from the vendored prometheus-operator CRD (deploy/helm/schemas/README.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tooling import REPO

CRD = REPO / "deploy" / "helm" / "schemas" / "monitoring.coreos.com_servicemonitors.yaml"
#: the oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one
KUBE_VERSIONS = ("1.29.0", "1.35.0")
#: kubeconform's -schema-location template over the directory that build_schemas fills
LOCATION = "{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"


def kubernetes_validate_schemas() -> Path:
    spec = importlib.util.find_spec("kubernetes_validate")
    assert spec is not None and spec.origin is not None, "kubernetes-validate is not installed (dev extra)"
    return Path(spec.origin).parent / "kubernetes-json-schema"


def _strict(node: Any) -> Any:
    """openapiV3Schema -> JSON schema that refuses unknown fields, as kubeconform's own converter does."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def build_schemas(target: Path) -> Path:
    """Fill ``target`` with kubeconform-readable schemas of every KUBE_VERSIONS; returns the template."""
    source = kubernetes_validate_schemas()
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    monitor = _strict(version["schema"]["openAPIV3Schema"])
    for kube in KUBE_VERSIONS:
        name = f"v{kube}-local-strict"
        src, dst = source / name, target / name
        assert src.is_dir(), f"kubernetes-validate has no schemas for Kubernetes {kube}"
        dst.mkdir(parents=True)
        definitions = (dst / "_definitions.json").as_uri()
        for schema in src.glob("*.json"):
            text = schema.read_text(encoding="utf-8").replace('"/api/_definitions.json', f'"{definitions}')
            (dst / schema.name).write_text(text, encoding="utf-8")
        (dst / "servicemonitor-monitoring-v1.json").write_text(json.dumps(monitor), encoding="utf-8")
    return target / LOCATION
