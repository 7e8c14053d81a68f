"""Library connections to PostgreSQL are bounded: a server that stops answering fails the call in
seconds (through a loopback proxy that blackholes the real server)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import psycopg
import pytest

from eventlake import pg
from eventlake.streaming.state import begin_batch
from tests.faults import TcpProxy


def test_a_blackholed_server_fails_connects_within_the_timeout(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    assert parts.hostname is not None and parts.port is not None
    proxy = TcpProxy(parts.hostname, parts.port)
    try:
        url = proxy.url_for(postgres_url)
        with pg.connect(url) as conn:  # through the proxy, healthy
            assert conn.execute("SELECT 1").fetchone() == (1,)
        proxy.blackhole()
        for call in (lambda: pg.connect(url).close(), lambda: begin_batch(url, "q", 0, lambda: 0)):
            started = time.monotonic()
            with pytest.raises(psycopg.OperationalError):
                call()
            assert time.monotonic() - started < pg.CONNECT_TIMEOUT_S + 5
    finally:
        proxy.close()
