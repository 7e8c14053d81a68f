"""The `eventlake` command as users run it: a real subprocess, real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eventlake.services import Stack

EVENTLAKE = [str(Path(sys.executable).parent / "eventlake")]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run([*EVENTLAKE, *args], capture_output=True, text=True, env=full_env, timeout=300, check=False)


def test_status_json_contract(stack: Stack) -> None:
    res = run("status", "--json", EVENTLAKE_HOME=str(stack.settings.home), EVENTLAKE_S3_LOCAL="true")
    status = json.loads(res.stdout)
    assert status["kafka"]["ok"] is True and ":" in status["kafka"]["bootstrap"]
    assert status["postgres"]["ok"] is True and "***" in status["postgres"]["url"]
    assert status["lake"]["ok"] is True and status["lake"]["uri"].startswith("file://")
    assert {"url", "ok"} <= set(status["schema_registry"])
    assert status["s3"]["ok"] is True and status["s3"]["server"] == "minio"
    # The passwords never reach stdout or stderr.
    password = (stack.settings.home / "postgres" / "password").read_text().strip()
    assert password not in res.stdout + res.stderr
    s3_secret = json.loads((stack.settings.home / "minio" / "credentials").read_text())["secret_access_key"]
    assert s3_secret not in res.stdout + res.stderr


def test_bad_arguments_exit_2_with_one_line() -> None:
    res = run("status", "--bogus")
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1
    res = run("no-such-command")
    assert res.returncode == 2 and "no-such-command" in res.stderr


def test_bad_config_exits_1_with_one_line(tmp_path: Path) -> None:
    res = run("status", EVENTLAKE_HOME=str(tmp_path), EVENTLAKE_KAFKA_DEFAULT_PARTITIONS="-1")
    assert res.returncode == 1
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "kafka.default_partitions" in line and "-1" in line


def test_old_java_makes_up_fail_cleanly(tmp_path: Path) -> None:
    jdk = tmp_path / "jdk" / "bin"
    jdk.mkdir(parents=True)
    (jdk / "java").write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\"' >&2\n")
    (jdk / "java").chmod(0o755)
    home = tmp_path / "home"
    res = run("up", EVENTLAKE_HOME=str(home), EVENTLAKE_JAVA_HOME=str(jdk.parent))
    assert res.returncode == 1
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Java 11" in errors[0] and "too old" in errors[0]
    status = json.loads(run("status", "--json", EVENTLAKE_HOME=str(home)).stdout)
    assert status["kafka"]["pid"] is None and status["postgres"]["pid"] is None


def test_dq_check_names_the_bad_line(tmp_path: Path) -> None:
    rules = tmp_path / "quality.yaml"
    rules.write_text(
        "sources:\n  iot_sensors:\n    - {type: unique}\n    - {type: range, field: value, min: 9, max: 1}\n"
    )
    res = run("dq", "check", EVENTLAKE_HOME=str(tmp_path), EVENTLAKE_QUALITY_RULES_FILE=str(rules))
    assert res.returncode == 1
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and f"{rules}:4:" in line and "min 9.0 > max 1.0" in line
    ok = run("dq", "check", EVENTLAKE_HOME=str(tmp_path))
    assert ok.returncode == 0 and "null_required:merchant_category" in ok.stdout


def test_dq_report_bad_since_exits_2(tmp_path: Path) -> None:
    res = run("dq", "report", "--since", "yesterday", EVENTLAKE_HOME=str(tmp_path))
    assert res.returncode == 2 and "15m, 2h, 7d" in res.stderr


WITHOUT_SPARK = """
import importlib.abc, sys

class _NoSpark(importlib.abc.MetaPathFinder):  # as if the `spark` extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"pyspark", "delta", "deltalake", "pandas", "pyarrow"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoSpark())
"""

#: what the services image (deploy/docker/eventlake.Dockerfile, no `spark` extra) runs
SERVICES = (
    "eventlake.cli",
    "eventlake.registry.app",
    "eventlake.observability.dashboard",
    "eventlake.sources.produce",
    "eventlake.serving.engine",
    "eventlake.alerting.dispatcher",
)


def test_the_services_run_without_the_spark_extra_and_lake_commands_say_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(WITHOUT_SPARK)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "EVENTLAKE_HOME": str(tmp_path / "home")}
    imports = "; ".join(f"import {m}" for m in SERVICES)
    probe = f"{imports}\ntry:\n    import pyspark\nexcept ModuleNotFoundError:\n    print('no pyspark')"
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert res.returncode == 0, f"a service module needs Spark:\n{res.stderr}"
    assert res.stdout.strip() == "no pyspark", "the blocker let pyspark through"
    assert run("--help", **env).returncode == 0
    res = run("stream", "--until-idle", **env)
    assert res.returncode == 1
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "eventlake[spark]" in line and "pyspark" in line, line
