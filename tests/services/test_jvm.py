"""Java and Maven prerequisites: clear one-line errors when they are missing or wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventlake.errors import SetupError
from eventlake.jvm import find_java, parse_java_major
from eventlake.services.jvm import fetch_jars
from tests.conftest import MakeSettings


def _fake_java(tmp_path: Path, version: str) -> Path:
    home = tmp_path / f"jdk-{version}"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2020-01-01' >&2\n")
    java.chmod(0o755)
    return home


def test_parse_java_major() -> None:
    assert parse_java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert parse_java_major('java version "1.8.0_292"') == 8
    assert parse_java_major('openjdk version "25" 2025-09-16') == 25
    assert parse_java_major("garbage") is None


def test_real_java_is_found(make_settings: MakeSettings) -> None:
    assert find_java(make_settings()).major >= 17


def test_old_java_is_refused(tmp_path: Path, make_settings: MakeSettings) -> None:
    settings = make_settings(java_home=_fake_java(tmp_path, "11.0.2"))
    with pytest.raises(SetupError, match=r"Java 11 .* too old.*Java 17\+"):
        find_java(settings)


def test_missing_java_home(tmp_path: Path, make_settings: MakeSettings) -> None:
    with pytest.raises(SetupError, match="no java executable"):
        find_java(make_settings(java_home=tmp_path / "nowhere"))


def test_no_java_on_path(monkeypatch: pytest.MonkeyPatch, make_settings: MakeSettings) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SetupError, match="java not found on PATH"):
        find_java(make_settings())


def test_unreachable_maven_repository_is_one_clear_error(tmp_path: Path, make_settings: MakeSettings) -> None:
    # A mirror on a closed loopback port stands in for "Maven Central unreachable"; an empty
    # local repository makes Maven really try it.
    settings_xml = tmp_path / "settings.xml"
    settings_xml.write_text(
        "<settings><mirrors><mirror><id>dead</id><mirrorOf>*</mirrorOf>"
        "<url>http://127.0.0.1:9/maven2</url></mirror></mirrors></settings>"
    )
    settings = make_settings(jars_dir=tmp_path / "jars")
    with pytest.raises(SetupError) as err:
        fetch_jars(
            settings,
            ("kafka",),
            maven_args=["-s", str(settings_xml), f"-Dmaven.repo.local={tmp_path / 'm2'}"],
        )
    msg = str(err.value)
    assert "Maven could not fetch the kafka jars" in msg and "Maven Central is reachable" in msg
    assert "\n" not in msg
    assert not (tmp_path / "jars" / "kafka").exists() and not (tmp_path / "jars" / "kafka.partial").exists()


def test_missing_maven(monkeypatch: pytest.MonkeyPatch, make_settings: MakeSettings) -> None:
    monkeypatch.setenv("PATH", os.path.dirname(os.__file__))  # no mvn there
    with pytest.raises(SetupError, match="mvn not found"):
        fetch_jars(make_settings(), ("kafka",))
