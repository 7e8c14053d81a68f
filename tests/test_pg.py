"""Library connections to PostgreSQL are bounded: a server that stops answering fails the call in
seconds (through a loopback proxy that blackholes the real server, and a real server paused by SIGSTOP)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import psycopg
import pytest

from eventlake import pg
from eventlake.services.postgres import PostgresService
from eventlake.streaming.state import begin_batch
from tests.faults import TcpProxy, paused

# A 2 s timeout must fire in under this (well below the 30 s default, so the bound is still the
# one set), with room for a loaded CI machine.
SLACK_S = 10


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


def test_a_paused_server_fails_statements_and_connects_within_their_bounds(own_postgres: PostgresService) -> None:
    """SIGSTOP: connections are accepted by the kernel and every packet is acknowledged, so keepalives
    see nothing wrong and a statement in flight would wait for as long as the pause lasts."""
    url, ref = own_postgres.endpoint(), own_postgres.running_process()  # the service's record in <home>/run
    assert url is not None and ref is not None
    idle = pg.connect(url, answer_timeout_s=2, autocommit=True)
    writing = pg.connect(url, answer_timeout_s=2)
    assert idle.execute("SELECT 1").fetchone() == (1,)
    assert writing.execute("SELECT 1").fetchone() == (1,)
    with paused(ref.pid) as processes:
        assert len(processes) > 2, "the postmaster and its backends"
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="did not answer within 2 s"):
            idle.execute("SELECT 1")
        assert 2 <= time.monotonic() - started < SLACK_S
        assert idle.closed, "a connection with a statement in flight is not used again"

        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError), writing.transaction():  # as a micro-batch writes
            writing.execute("SELECT pg_advisory_xact_lock(1)")
        assert time.monotonic() - started < SLACK_S
        assert writing.closed

        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            pg.connect(url, connect_timeout=2).close()
        assert time.monotonic() - started < SLACK_S
    # Resumed: a new connection works, with the library's default bound.
    with pg.connect(url) as conn:
        assert conn.answer_timeout_s == pg.ANSWER_TIMEOUT_S
        assert conn.execute("SELECT 1").fetchone() == (1,)
