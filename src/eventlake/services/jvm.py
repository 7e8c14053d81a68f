"""Java and the Maven-fetched jars: find them, check them, fetch them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from eventlake.config import Settings
from eventlake.errors import SetupError
from eventlake.jvm import jar_dir

POM = Path(__file__).resolve().parents[3] / "jvm" / "pom.xml"
#: classpath groups fetched by `make setup`, one Maven profile each (see jvm/pom.xml)
JAR_GROUPS = ("kafka", "spark")


def fetch_jars(
    settings: Settings, groups: tuple[str, ...] = JAR_GROUPS, *, maven_args: list[str] | None = None
) -> None:
    """Fetch each group's jars with Maven into ``<jars_dir>/<group>``; skip groups already there.

    A stamp file holds the pom's content so that a changed pom re-fetches.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SetupError("mvn not found on PATH", "install Maven (apt-get install maven)")
    pom_text = POM.read_text()
    for group in groups:
        target = jar_dir(settings, group)
        stamp = target / ".pom"
        if stamp.is_file() and stamp.read_text() == pom_text and any(target.glob("*.jar")):
            continue
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        argv = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(POM),
            "-P",
            group,
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            *(maven_args or []),
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SetupError(
                f"Maven could not fetch the {group} jars: {_first_maven_error(proc.stdout + proc.stderr)}",
                "check that Maven Central is reachable (proxy/mirror in ~/.m2/settings.xml) and retry `make setup`",
            )
        (tmp / ".pom").write_text(pom_text)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)


def _first_maven_error(output: str) -> str:
    for line in output.splitlines():
        clean = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if clean.startswith("[ERROR]") and len(clean) > 8:
            return clean[8:].strip()[:300]
    return (output.strip().splitlines() or ["no output"])[-1][:300]
