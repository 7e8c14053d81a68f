"""One writer per lake: a PostgreSQL session advisory lock, held while a pipeline runs.

Delta on S3 has no mutual exclusion between writers, and two serving paths would both write
PostgreSQL gold (a replaying one moving rows back for a while). So ``run_jobs`` takes this lock
before it starts anything, and a second pipeline on the same lake (the same ``lake_uri`` and
PostgreSQL database) is refused with one line that names the holder.

The lock lives as long as its PostgreSQL session. If that session ends (a PostgreSQL restart, a
network cut), :meth:`LakeLock.check` takes the lock again once the database answers; if another
process took it in between, the pipeline must stop, and ``check`` says so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from typing import Any

import psycopg

from eventlake import pg
from eventlake.errors import EventlakeError

log = logging.getLogger(__name__)

APPLICATION = "eventlake-pipeline"


class LakeBusyError(EventlakeError):
    """Another pipeline writes this lake."""


def lock_key(lake_uri: str) -> int:
    """The advisory lock's key: a stable signed 64-bit hash of the lake URI."""
    return int.from_bytes(hashlib.blake2b(f"eventlake-lake:{lake_uri}".encode(), digest_size=8).digest(), signed=True)


class LakeLock:
    """``acquire`` (raises :class:`LakeBusyError`), ``check`` while running, ``release`` at the end."""

    def __init__(self, postgres_url: str, lake_uri: str) -> None:
        self.url, self.lake_uri, self.key = postgres_url, lake_uri, lock_key(lake_uri)
        self.holder = f"pid {os.getpid()} on {socket.gethostname()}"
        self.application = f"{APPLICATION} {self.holder}"
        self._conn: psycopg.Connection[Any] | None = None
        self._backend: int | None = None  # our last lock session's server pid

    def acquire(self) -> LakeLock:
        conn = pg.connect(self.url, autocommit=True, application_name=self.application)
        if self._backend is not None:
            # Our lost session may not have ended on the server yet, and its lock with it: end it.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s AND application_name = %s",
                (self._backend, self.application),
            )
        for _ in range(20):
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            if (row is not None and row[0]) or self._backend is None or not self._held_by_old_session(conn):
                break
            time.sleep(0.1)
        if row is None or not row[0]:
            other = self._other_holder(conn)
            conn.close()
            raise LakeBusyError(
                f"another pipeline writes the lake {self.lake_uri} ({other})",
                "stop it first, or give this one its own lake (EVENTLAKE_LAKE_URI) and database",
            )
        self._conn, self._backend = conn, conn.info.backend_pid
        log.info("lake lock taken", extra={"lake": self.lake_uri, "key": self.key})
        return self

    def _held_by_old_session(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND application_name = %s", (self._backend, self.application)
        ).fetchone()
        return row is not None

    def _other_holder(self, conn: psycopg.Connection[Any]) -> str:
        # An advisory lock on a bigint key shows in pg_locks as (classid, objid) = (high, low) 32 bits.
        row = conn.execute(
            "SELECT a.application_name, a.client_addr::text FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.classid::bigint = (%s >> 32) & 4294967295 AND l.objid::bigint = %s & 4294967295",
            (self.key, self.key),
        ).fetchone()
        if row is None:
            return "it stopped meanwhile; try again"
        name, addr = row
        who = name.removeprefix(APPLICATION).strip() if name and name.startswith(APPLICATION) else (name or "?")
        return f"held by {who}" + (f" from {addr}" if addr else "")

    def check(self) -> str | None:
        """None while this process holds the lock (taking it again after its session was lost, once
        PostgreSQL answers); the reason the pipeline must stop if another process holds it now."""
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                conn.execute("SELECT 1")
                return None
            except psycopg.Error as err:
                log.warning("lake lock session lost; taking it again", extra={"error": str(err)[:300]})
                conn.close()
        self._conn = None
        try:
            self.acquire()
        except LakeBusyError as err:
            return str(err)
        except psycopg.Error as err:
            log.warning("lake lock: PostgreSQL unreachable; will retry", extra={"error": str(err)[:300]})
        return None

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            self._conn.close()
        except psycopg.Error as err:
            # The session's end releases the lock anyway.
            log.warning("releasing the lake lock failed", extra={"error": str(err)[:300]})
        self._conn = None
