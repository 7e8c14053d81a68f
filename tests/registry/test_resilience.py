"""The registry process against faults of its database, and its refusal to serve writes openly off loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.faults import TcpProxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(postgres_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    return {**env, "EVENTLAKE_POSTGRES_URL": postgres_url}


@pytest.fixture
def proxied_registry(fresh_db: str) -> Iterator[tuple[str, TcpProxy]]:
    parts = urlsplit(fresh_db)
    proxy = TcpProxy(str(parts.hostname), int(parts.port or 5432))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventlake.registry", "--port", str(port)],
        env=_env(proxy.url_for(fresh_db)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/subjects", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.2)
        yield url, proxy
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proxy.close()


def test_registry_reconnects_after_its_database_drops_every_connection(
    proxied_registry: tuple[str, TcpProxy],
) -> None:
    """A PostgreSQL restart closes every pooled connection: the next requests must not answer 500."""
    url, proxy = proxied_registry
    schema = '{"type": "record", "name": "R", "fields": [{"name": "event_id", "type": "string"}]}'
    resp = httpx.post(f"{url}/subjects/r-value/versions", json={"schema": schema})
    assert resp.status_code == 200, resp.text
    for _ in range(3):  # several pooled connections, each broken
        proxy.cut()
        answers = [httpx.get(f"{url}/subjects/r-value/versions/latest").status_code for _ in range(10)]
        assert answers == [200] * 10


def test_registry_refuses_a_public_bind_without_credentials(fresh_db: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "eventlake.registry", "--host", "0.0.0.0", "--port", str(_free_port())],
        env=_env(fresh_db),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines and "EVENTLAKE_REGISTRY_AUTH_TOKEN" in lines[-1] and "0.0.0.0" in lines[-1]
    assert "Traceback" not in proc.stderr
