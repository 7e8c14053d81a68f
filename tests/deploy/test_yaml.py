"""yamllint (.yamllint.yaml, warnings fail too) over every hand-written YAML file of config/, deploy/
and .github/; Helm templates are Go templates and are checked by helm lint and kubeconform instead."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.tooling import REPO, output, run

CONFIG = REPO / ".yamllint.yaml"


def yaml_files() -> list[Path]:
    roots = [REPO / "config", REPO / "deploy", REPO / ".github"]
    files = [p for root in roots for p in root.rglob("*") if p.suffix in {".yml", ".yaml"}]
    return sorted(p for p in files if "templates" not in p.relative_to(REPO).parts)


def test_yamllint_passes() -> None:
    files = yaml_files()
    assert len(files) >= 15
    assert REPO / "deploy" / "compose" / "docker-compose.yml" in files
    assert REPO / "deploy" / "helm" / "eventlake" / "values-prod.yaml" in files
    result = run("yamllint", "--strict", "-c", CONFIG, *files)
    assert result.returncode == 0, output(result)


def test_yamllint_rejects_duplicate_keys_and_bad_indentation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  kafka:\n    image: a:1\n  kafka:\n     image: b:2\nflag: yes\n", encoding="utf-8")
    result = run("yamllint", "--strict", "-c", CONFIG, bad)
    text = output(result)
    assert result.returncode != 0
    assert "duplication of key" in text
    assert "truthy" in text
