"""deploy/docker/*.Dockerfile: hadolint (every rule at the strictest threshold, deploy/docker/hadolint.yaml),
the project's image policy, the build context, and the install steps the Makefile uses. Images are not
built here (no Docker engine on this machine): CI's `images` job builds them."""

from __future__ import annotations

import http.server
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from tests.deploy.dockerfile import copy_sources, dockerignore_patterns, ignored, parse, policy_problems, stages
from tests.deploy.envcheck import unknown_variables
from tests.deploy.tooling import REPO, output, run

DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
HADOLINT_CONFIG = DOCKER / "hadolint.yaml"
IMAGES = {"eventlake", "spark", "airflow", "minio"}

GOOD_FINAL = (
    "FROM python:3.11.14-slim-bookworm AS build\nRUN echo build\n"
    "FROM python:3.11.14-slim-bookworm\nUSER 10001:10001\n"
    'HEALTHCHECK CMD ["python", "-c", "print(1)"]\nCMD ["python"]\n'
)
BAD_DOCKERFILES = {  # policy violation -> the phrase the checker must report
    "latest tag": (GOOD_FINAL.replace("python:3.11.14-slim-bookworm\nUSER", "python:latest\nUSER"), "not pinned"),
    "no tag": (GOOD_FINAL.replace("python:3.11.14-slim-bookworm\nUSER", "python\nUSER"), "has no tag"),
    "root user": (GOOD_FINAL.replace("USER 10001:10001", "USER root"), "runs as root"),
    "no user": (GOOD_FINAL.replace("USER 10001:10001\n", ""), "sets no USER"),
    "named user": (GOOD_FINAL.replace("USER 10001:10001", "USER app"), "not numeric"),
    "no healthcheck": (GOOD_FINAL.replace('HEALTHCHECK CMD ["python", "-c", "print(1)"]\n', ""), "no HEALTHCHECK"),
    "healthcheck none": (
        GOOD_FINAL.replace('HEALTHCHECK CMD ["python", "-c", "print(1)"]', "HEALTHCHECK NONE"),
        "no HEALTHCHECK",
    ),
    "single stage": ("FROM python:3.11.14-slim-bookworm\nUSER 10001\nHEALTHCHECK CMD true\n", "multi-stage"),
    "ADD url": (GOOD_FINAL.replace("RUN echo build", "ADD https://example.com/x.tgz /x.tgz"), "ADD of a URL"),
}


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return run("hadolint", "--no-color", "--config", HADOLINT_CONFIG, path)


def test_the_four_images_exist() -> None:
    assert {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES} == IMAGES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = hadolint(dockerfile)
    assert result.returncode == 0, output(result)


def test_hadolint_rejects_latest_and_root(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text('FROM python:latest\nRUN pip install httpx\nUSER root\nCMD ["python"]\n', encoding="utf-8")
    result = hadolint(bad)
    text = output(result)
    assert result.returncode != 0, text
    assert "DL3007" in text  # latest
    assert "DL3002" in text  # last USER is root
    assert "DL3013" in text  # unpinned pip install


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_policy_passes(dockerfile: Path) -> None:
    assert policy_problems(dockerfile.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(("text", "reason"), BAD_DOCKERFILES.values(), ids=BAD_DOCKERFILES.keys())
def test_image_policy_rejects(text: str, reason: str) -> None:
    assert policy_problems(GOOD_FINAL) == []
    problems = policy_problems(text)
    assert any(reason in p for p in problems), problems


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_are_in_the_build_context(dockerfile: Path) -> None:
    patterns = dockerignore_patterns(REPO / ".dockerignore")
    sources = copy_sources(dockerfile.read_text(encoding="utf-8"))
    assert sources
    for line, source in sources:
        assert (REPO / source).exists(), f"{dockerfile.name}:{line}: {source} does not exist"
        assert not ignored(source, patterns), f"{dockerfile.name}:{line}: {source} is excluded by .dockerignore"


def test_dockerignore_keeps_state_and_secrets_out() -> None:
    patterns = dockerignore_patterns(REPO / ".dockerignore")
    for path in (
        ".venv/bin/python",
        ".eventlake/jars/spark/x.jar",
        ".git/config",
        "deploy/compose/.env",
        "web/node_modules/x",
    ):
        assert ignored(path, patterns), path
    for path in ("src/eventlake/config.py", "config/eventlake.yaml", "jvm/pom.xml", "deploy/docker/healthcheck.py"):
        assert not ignored(path, patterns), path
    # the checker itself: a COPY of an ignored folder is caught
    assert ignored("tests/deploy/test_dockerfiles.py", patterns)


def _makefile() -> str:
    return (REPO / "Makefile").read_text(encoding="utf-8")


def test_images_install_like_the_makefile() -> None:
    """The same pins as `make setup`: pip, constraints files, Airflow's packages, jars via the CLI."""
    makefile = _makefile()
    (pip_pin,) = set(re.findall(r"pip==[\d.]+", makefile))
    airflow_pins = re.search(
        r"constraints-airflow\.txt (apache-airflow==\S+ apache-airflow-providers-postgres==\S+)", makefile
    )
    assert airflow_pins is not None
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text(encoding="utf-8")
        for ins in parse(text):
            if ins.keyword == "FROM" and ins.args.startswith("python:"):
                version = re.match(r"python:(\d+)\.(\d+)", ins.args)
                assert (
                    version is not None
                    and requires == f">={version[1]}.{version[2]},<{version[1]}.{int(version[2]) + 1}"
                )
        if dockerfile.stem == "minio":
            continue
        assert pip_pin in text, dockerfile.name
        assert "-c constraints.txt" in text, dockerfile.name
    for name in ("spark", "airflow"):
        text = (DOCKER / f"{name}.Dockerfile").read_text(encoding="utf-8")
        assert "eventlake setup jars" in text, name
        assert "openjdk-17-jre-headless" in text, name
    assert airflow_pins[1] in (DOCKER / "airflow.Dockerfile").read_text(encoding="utf-8")


def _healthcheck(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, DOCKER / "healthcheck.py", url], capture_output=True, text=True, check=False, timeout=30
    )


def test_healthcheck_script() -> None:
    """The images' HEALTHCHECK: 0 for a 2xx from this container's loopback, 1 otherwise."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health/live" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert _healthcheck(f"{base}/health/live").returncode == 0
        assert _healthcheck(f"{base}/health/ready").returncode == 1  # 503
    finally:
        server.shutdown()
    assert _healthcheck("http://127.0.0.1:9/health/live").returncode == 1  # nothing listens
    for elsewhere in ("http://example.com/health", "http://localhost.example.com/health", "https://127.0.0.1/health"):
        refused = _healthcheck(elsewhere)
        assert refused.returncode == 1 and "only this container's own loopback" in refused.stderr, elsewhere


def image_env(text: str) -> dict[str, str]:
    """ENV of the final stage (KEY=VALUE form)."""
    env: dict[str, str] = {}
    final = stages(parse(text))[-1]
    for ins in final:
        if ins.keyword == "ENV":
            for item in shlex.split(ins.args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def env_problems(env: dict[str, str]) -> list[str]:
    """EVENTLAKE_* names the settings model does not read, and /opt/eventlake paths not from the repo."""
    out = [f"{name} is not a setting" for name in sorted(unknown_variables(set(env)))]
    for name, value in env.items():
        if name.startswith("EVENTLAKE_") and value.startswith("/opt/eventlake/") and "jars" not in value:
            source = REPO / value.removeprefix("/opt/eventlake/")
            if not source.exists():
                out.append(f"{name}={value}: {source.relative_to(REPO)} is not in the repository")
    return out


@pytest.mark.parametrize("name", ["eventlake", "spark", "airflow"])
def test_image_environment_is_read_by_the_config_model(name: str) -> None:
    env = image_env((DOCKER / f"{name}.Dockerfile").read_text(encoding="utf-8"))
    assert env["EVENTLAKE_CONFIG"] == "/opt/eventlake/config/eventlake.yaml"
    assert env["EVENTLAKE_HOME"] == "/var/lib/eventlake"
    assert env_problems(env) == []


def test_image_environment_check_rejects_typos_and_missing_files() -> None:
    bad = {"EVENTLAKE_HOMEDIR": "/var/lib/eventlake", "EVENTLAKE_CONFIG": "/opt/eventlake/config/eventlake.yml"}
    found = env_problems(bad)
    assert "EVENTLAKE_HOMEDIR is not a setting" in found
    assert any("config/eventlake.yml is not in the repository" in p for p in found)


def test_minio_is_pinned_in_one_place() -> None:
    """deploy/minio.version is the MinIO version: the image and the local stack's build read it, the docs name it."""
    version = (REPO / "deploy" / "minio.version").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"v0\.0\.0-\d{14}-[0-9a-f]{12}", version), version
    dockerfile = (DOCKER / "minio.Dockerfile").read_text(encoding="utf-8")
    tools = (REPO / "deploy" / "tools.sh").read_text(encoding="utf-8")
    assert "COPY deploy/minio.version" in dockerfile and "< deploy/minio.version" in tools
    for text in (dockerfile, tools, (REPO / "Makefile").read_text(encoding="utf-8")):
        assert not re.search(r"minio@v\d", text)  # no second pin
    assert f"github.com/minio/minio@{version}" in (REPO / "README.md").read_text(encoding="utf-8")
