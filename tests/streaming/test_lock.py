"""One pipeline per lake (real PostgreSQL): a second is refused with one line naming the holder, a
lost lock session is taken again, and a lock taken over meanwhile stops the pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from eventlake.services import Stack, endpoints
from eventlake.streaming.jobs import JOBS, run_jobs
from eventlake.streaming.lock import LakeBusyError, LakeLock, lock_key
from tests.conftest import MakeSettings

EVENTLAKE = str(Path(sys.executable).parent / "eventlake")


def _backend(url: str, key: int) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid::bigint = (%s >> 32) & 4294967295 AND objid::bigint = %s & 4294967295",
            (key, key),
        ).fetchone()
    assert row is not None, "the lock is held"
    return int(row[0])


def test_a_second_writer_of_a_lake_is_refused_and_another_lake_is_not(fresh_db: str) -> None:
    first = LakeLock(fresh_db, "s3://bucket/lake-a").acquire()
    try:
        with pytest.raises(LakeBusyError) as refused:
            LakeLock(fresh_db, "s3://bucket/lake-a").acquire()
        message = str(refused.value)
        assert "\n" not in message
        assert "another pipeline writes the lake s3://bucket/lake-a" in message
        assert f"pid {os.getpid()}" in message, "names the holder"
        other = LakeLock(fresh_db, "s3://bucket/lake-b").acquire()  # a different lake: no conflict
        other.release()
    finally:
        first.release()
    LakeLock(fresh_db, "s3://bucket/lake-a").acquire().release()  # released: free again
    assert lock_key("s3://bucket/lake-a") == lock_key("s3://bucket/lake-a") != lock_key("s3://bucket/lake-b")


def test_a_lost_lock_session_is_taken_again_unless_another_writer_took_it(fresh_db: str) -> None:
    lake = "file:///data/lake"
    lock = LakeLock(fresh_db, lake).acquire()
    with psycopg.connect(fresh_db, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (_backend(fresh_db, lock.key),))
    assert lock.check() is None, "taken again on a new session"
    again = _backend(fresh_db, lock.key)

    with psycopg.connect(fresh_db, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (again,))
        time.sleep(0.2)
        thief = LakeLock(fresh_db, lake).acquire()  # another writer, in the gap
        try:
            why = lock.check()
            assert why is not None and "another pipeline writes the lake file:///data/lake" in why
        finally:
            thief.release()
    lock.release()


def test_run_jobs_and_the_cli_refuse_a_lake_that_another_pipeline_writes(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any
) -> None:
    lake = {"uri": (tmp_path / "lake").as_uri()}
    settings = make_settings("locked", home=stack.settings.home, s3={"local": True}, lake=lake)
    live = endpoints(settings)
    held = LakeLock(live.postgres_url, settings.lake_uri).acquire()
    try:
        t = time.monotonic()
        with pytest.raises(LakeBusyError):
            run_jobs(settings, live, list(JOBS), until_idle=True)
        assert time.monotonic() - t < 15, "refused before Spark starts"

        env = {
            **os.environ,
            "EVENTLAKE_HOME": str(stack.settings.home),
            "EVENTLAKE_S3_LOCAL": "true",
            "EVENTLAKE_LAKE_URI": settings.lake_uri,
        }
        res = subprocess.run(
            [EVENTLAKE, "stream", "--until-idle"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert res.returncode == 1, res.stderr[-2000:]
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "another pipeline writes the lake" in errors[0], res.stderr[-2000:]
        assert "Traceback" not in res.stderr
    finally:
        held.release()
