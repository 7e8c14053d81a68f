"""The local PostgreSQL server, and pointing eventlake at an existing one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from eventlake.errors import UnreachableError
from eventlake.services import Stack
from eventlake.services.postgres import PostgresService, mask_url, write_secret
from tests.conftest import MakeSettings


def test_local_server_accepts_sql_with_password_auth(postgres_url: str, stack: Stack) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_smoke (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t_smoke VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET v = excluded.v")
        assert conn.execute("SELECT v FROM t_smoke WHERE id = 1").fetchone() == ("a",)
        assert conn.execute("SELECT current_database()").fetchone() == ("eventlake",)
    # Loopback only; without the password the server refuses.
    svc = stack.service("postgres")
    assert svc.status()["url"].startswith("postgresql://eventlake:***@127.0.0.1:")
    no_password = postgres_url.replace(f":{postgres_url.split(':')[2].split('@', maxsplit=1)[0]}@", "@")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(no_password, connect_timeout=3)


def test_external_url_is_used_not_started(postgres_url: str, make_settings: MakeSettings) -> None:
    settings = make_settings("extpg", postgres={"url": postgres_url})
    svc = PostgresService(settings)
    assert not svc.managed
    assert svc.check().ok
    assert svc.status()["pid"] is None
    assert "***" in svc.status()["url"]


def test_unreachable_external_url_fails_up_with_one_line(make_settings: MakeSettings) -> None:
    settings = make_settings(
        "deadpg",
        postgres={"url": "postgresql://u:topsecret@127.0.0.1:1/db"},
        kafka={"bootstrap": "127.0.0.1:1"},
        registry={"enabled": False},
    )
    stack = Stack(settings)
    # Kafka is external too, and down: the first unreachable component is named.
    with pytest.raises(UnreachableError) as err:
        stack.up()
    msg = str(err.value)
    assert "kafka" in msg and "EVENTLAKE_KAFKA_BOOTSTRAP" in msg and "\n" not in msg
    pg = PostgresService(settings)
    health = pg.check()
    assert not health.ok and "topsecret" not in health.detail


def test_mask_url() -> None:
    assert mask_url("postgresql://u:p%40ss@h:5/d") == "postgresql://u:***@h:5/d"
    assert mask_url("postgresql://u@h/d") == "postgresql://u@h/d"


def test_password_file_is_owner_only_from_creation(tmp_path: Path) -> None:
    """Created with mode 0600 in the open() call itself: no moment where others may read it."""
    old = os.umask(0)  # the most permissive umask: the mode must not depend on it
    try:
        write_secret(tmp_path / "password", "s3cr3t")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "password").stat().st_mode) == 0o600
    assert (tmp_path / "password").read_text() == "s3cr3t"
    with pytest.raises(FileExistsError):
        write_secret(tmp_path / "password", "other")  # never silently replaced
