"""Java and the project's jars on this machine: the ``java`` to run, the classpath of a jar group.

(Fetching the jars from Maven Central is setup: ``eventlake.services.jvm.fetch_jars``.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from eventlake.config import Settings
from eventlake.errors import SetupError

MIN_JAVA = 17


@dataclass(frozen=True)
class Java:
    path: Path
    major: int


def parse_java_major(version_output: str) -> int | None:
    """``openjdk version "17.0.15"`` -> 17; ``java version "1.8.0_292"`` -> 8."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def find_java(settings: Settings) -> Java:
    """The ``java`` to run Kafka with: ``java_home`` setting, ``$JAVA_HOME``, then ``PATH``.

    Raises :class:`SetupError` if there is none or it is older than Java 17.
    """
    home = settings.java_home or (Path(os.environ["JAVA_HOME"]) if os.environ.get("JAVA_HOME") else None)
    if home is not None:
        candidate = home / "bin" / "java"
        if not os.access(candidate, os.X_OK):
            raise SetupError(
                f"no java executable at {candidate}",
                "fix JAVA_HOME/EVENTLAKE_JAVA_HOME or install OpenJDK 17 (apt-get install openjdk-17-jdk-headless)",
            )
        path = candidate
    else:
        found = shutil.which("java")
        if found is None:
            raise SetupError(
                "java not found on PATH",
                "install OpenJDK 17+ (apt-get install openjdk-17-jdk-headless) or set JAVA_HOME",
            )
        path = Path(found)
    try:
        out = subprocess.run([str(path), "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SetupError(f"cannot run {path} -version: {err}", "check the Java installation") from err
    major = parse_java_major(out.stderr + out.stdout)
    if major is None:
        raise SetupError(f"cannot read the Java version from {path}", "check the Java installation")
    if major < MIN_JAVA:
        raise SetupError(
            f"Java {major} at {path} is too old: Kafka 4 and Spark 4 need Java {MIN_JAVA}+",
            "install OpenJDK 17 and point JAVA_HOME at it",
        )
    return Java(path, major)


def jar_dir(settings: Settings, group: str) -> Path:
    return settings.jars_dir / group


def classpath(settings: Settings, group: str) -> list[Path]:
    """The jars of one group; :class:`SetupError` if `make setup` has not fetched them."""
    jars = sorted(jar_dir(settings, group).glob("*.jar"))
    if not jars:
        raise SetupError(
            f"no {group} jars in {jar_dir(settings, group)}",
            "run `make setup` (or `eventlake setup jars`) to fetch them from Maven Central",
        )
    return jars
