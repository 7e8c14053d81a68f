""".github/workflows: actionlint (expressions, contexts, known actions' inputs, job graph), the
GitHub workflow JSON schema (vendored in check-jsonschema), and the release rules: actions pinned to
exact versions, CI runs `.ci/run`, CD deploys prod only from a tag through an approved environment."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tooling import REPO, output, run, tool

WORKFLOWS = REPO / ".github" / "workflows"
CI, CD = WORKFLOWS / "ci.yml", WORKFLOWS / "cd.yml"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@(?:v\d+\.\d+\.\d+|[0-9a-f]{40})$")


def load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def triggers(doc: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True
    on = doc.get("on", doc.get(True))
    assert isinstance(on, dict)
    return on


def uses(doc: dict[Any, Any]) -> list[str]:
    return [step["uses"] for job in doc["jobs"].values() for step in job.get("steps", []) if "uses" in step]


def major_refs(source: Path, target_dir: Path) -> Path:
    """A copy of a workflow with `uses: owner/action@vX.Y.Z` as `@vX`: actionlint checks the inputs of
    the popular actions it knows only by their major tags, and the files pin exact versions."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    target.write_text(re.sub(r"(uses: [\w./-]+@v\d+)\.\d+\.\d+", r"\1", source.read_text("utf-8")), "utf-8")
    return target


def actionlint(*paths: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    # actionlint runs shellcheck on every `run:` script, but silently skips it when it is not found
    return run("actionlint", "-no-color", "-shellcheck", tool("shellcheck"), *paths, cwd=cwd)


def test_actionlint_passes(tmp_path: Path) -> None:
    result = actionlint(CI, CD)
    assert result.returncode == 0, output(result)
    copies = tmp_path / ".github" / "workflows"
    result = actionlint(major_refs(CI, copies), major_refs(CD, copies), cwd=tmp_path)
    assert result.returncode == 0, output(result)


def test_actionlint_rejects_broken_workflows(tmp_path: Path) -> None:
    workflows = tmp_path / "src"
    workflows.mkdir()
    (workflows / "syntax.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: [\n", "utf-8"
    )
    (workflows / "semantics.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: missing\n"
        "    steps:\n      - uses: actions/checkout@v4.2.2\n        with:\n          fetch-deep: 1\n"
        "      - run: echo ${{ github.evnt_name }}\n"
        "      - run: rm -rf $DIR/build\n",
        "utf-8",
    )
    copies = tmp_path / ".github" / "workflows"
    result = actionlint(
        major_refs(workflows / "syntax.yml", copies), major_refs(workflows / "semantics.yml", copies), cwd=tmp_path
    )
    text = output(result)
    assert result.returncode != 0
    assert "could not parse as YAML" in text  # syntax.yml
    assert '"missing"' in text  # needs: an unknown job
    assert 'input "fetch-deep" is not defined' in text  # not an input of actions/checkout
    assert '"evnt_name" is not defined' in text  # not a property of github
    assert "SC2086" in text  # shellcheck: an unquoted variable in a run: script


def test_workflows_match_the_github_workflow_schema(tmp_path: Path) -> None:
    result = run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", CI, CD)
    assert result.returncode == 0, output(result)
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    timeout-minutes: soon\n    steps: []\n", "utf-8"
    )
    result = run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", bad)
    assert result.returncode != 0 and "timeout-minutes" in output(result)


def test_actions_are_pinned_to_exact_versions() -> None:
    for path in (CI, CD):
        refs = uses(load(path))
        assert refs, path.name
        unpinned = [r for r in refs if not PINNED.match(r)]
        assert not unpinned, f"{path.name}: pin to vX.Y.Z or a commit: {unpinned}"
    assert not PINNED.match("actions/checkout@v4") and not PINNED.match("actions/checkout@main")


def test_ci_runs_the_suite_lint_and_image_builds() -> None:
    ci = load(CI)
    runs = "\n".join(s.get("run", "") for job in ci["jobs"].values() for s in job.get("steps", []))
    assert "bash .ci/run" in runs
    assert "make lint" in runs and "make typecheck" in runs and "pytest -p no:cacheprovider tests/deploy" in runs
    images = ci["jobs"]["images"]
    assert {i["dockerfile"] for i in images["strategy"]["matrix"]["include"]} == {
        f"deploy/docker/{n}.Dockerfile" for n in ("eventlake", "spark", "airflow", "minio")
    }
    build = next(s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["cache-from"].startswith("type=gha") and build["with"]["cache-to"].startswith("type=gha")
    assert "pull_request" in triggers(ci)


def test_cd_pushes_on_main_and_deploys_prod_from_a_tag_with_approval() -> None:
    cd = load(CD)
    on = triggers(cd)
    assert on["push"]["branches"] == ["main"] and on["push"]["tags"] == ["v*.*.*"]
    jobs = cd["jobs"]
    assert jobs["images"]["permissions"]["packages"] == "write"
    push = next(s for s in jobs["images"]["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert push["with"]["push"] is True
    login = next(s for s in jobs["images"]["steps"] if s.get("uses", "").startswith("docker/login-action@"))
    assert login["with"]["registry"] == "ghcr.io"
    dev, prod = jobs["deploy-dev"], jobs["deploy-production"]
    assert dev["environment"]["name"] == "dev" and "refs/heads/main" in dev["if"]
    assert prod["environment"]["name"] == "production" and "refs/tags/v" in prod["if"]
    assert dev["needs"] == prod["needs"] == "images"
    for job, values in ((dev, "values-dev.yaml"), (prod, "values-prod.yaml")):
        script = "\n".join(s.get("run", "") for s in job["steps"])
        assert "helm upgrade --install" in script and values in script and "--atomic" in script
    rollback = "\n".join(s.get("run", "") for s in jobs["rollback"]["steps"])
    assert 'helm rollback "$RELEASE" "$REVISION"' in rollback
    assert "workflow_dispatch" in on


def test_shell_scripts_pass_shellcheck(tmp_path: Path) -> None:
    scripts = [REPO / ".ci" / "run", REPO / "deploy" / "tools.sh"]
    result = run("shellcheck", *scripts)
    assert result.returncode == 0, output(result)
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\ncd $1\nrm -rf $TARGET/*\n", encoding="utf-8")
    result = run("shellcheck", bad)
    assert result.returncode != 0 and "SC2086" in output(result)
