"""PostgreSQL connections of the library: bounded, so a server that stops answering fails the call
within seconds (the batch retries, the dispatcher's next round tries again) instead of hanging a
micro-batch or the alert dispatcher forever.

- ``connect_timeout``: a server that does not answer the handshake;
- TCP keepalives: a connection whose peer vanished mid-query (about 10 + 3 x 5 s);
- an answer timeout (:data:`ANSWER_TIMEOUT_S`): a server that is there but does not answer a
  statement (paused by SIGSTOP, a frozen VM or disk, a middlebox that keeps the TCP session up).
  Keepalives cannot see that, because the server's kernel still acknowledges every packet and
  PostgreSQL's own ``statement_timeout`` runs in the stopped server; so the client gives up on the
  answer, closes the connection (its protocol state is unknown) and raises ``OperationalError``;
- :func:`retrying`: a short outage (a restart, a failover) is ridden out inside the call; a longer
  one fails it, and the caller's supervisor takes over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.errors import _WaitTimeout  # what Connection.wait raises when its timeout expires

log = logging.getLogger(__name__)
T = TypeVar("T")
RV = TypeVar("RV")

CONNECT_TIMEOUT_S = 10
#: the longest one exchange with the server may wait for its answer (a statement and its rows, a commit)
ANSWER_TIMEOUT_S = 30.0
#: the same for batch jobs (bookkeeping prunes, reports over days of rows), which their scheduler bounds too
BATCH_ANSWER_TIMEOUT_S = 1800.0
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


class BoundedConnection(psycopg.Connection[Any]):
    """A connection whose every wait for the server's answer ends after ``answer_timeout_s``."""

    answer_timeout_s: float | None = ANSWER_TIMEOUT_S

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        bound = timeout if timeout is not None else self.answer_timeout_s
        try:
            return super().wait(gen, interval, bound)
        except _WaitTimeout as err:
            self.close()  # a statement is still in flight: the connection cannot be used again
            raise psycopg.OperationalError(
                f"PostgreSQL did not answer within {bound:g} s (server paused or hung?); connection closed"
            ) from err


def connect(url: str, *, answer_timeout_s: float | None = ANSWER_TIMEOUT_S, **kwargs: Any) -> BoundedConnection:
    """``psycopg.connect`` with the bounds above (keyword arguments pass through); ``answer_timeout_s``
    None waits for answers as long as they take (long batch statements)."""
    conn = BoundedConnection.connect(url, **({"connect_timeout": CONNECT_TIMEOUT_S} | KEEPALIVES | kwargs))
    conn.answer_timeout_s = answer_timeout_s
    return conn


def retrying(call: Callable[[], T], *, what: str, attempts: int = 4, backoff_s: float = 1.0) -> T:
    """``call()``, again after 1, 2, 4 s (``backoff_s`` doubling) while PostgreSQL is unreachable
    (``OperationalError``: refused, reset, timed out); other errors and the last attempt's raise.
    Only for idempotent calls: an attempt whose commit reached the server but whose answer did not
    runs again."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except psycopg.OperationalError as err:
            if attempt == attempts:
                raise
            wait = backoff_s * 2 ** (attempt - 1)
            log.warning(
                "PostgreSQL unreachable; retrying",
                extra={"what": what, "attempt": attempt, "in_s": wait, "error": str(err)[:300]},
            )
            time.sleep(wait)
    raise AssertionError("unreachable")
