"""PostgreSQL connections of the library: bounded, so a server that stops answering fails the call
within seconds (the batch retries, the dispatcher's next round tries again) instead of hanging a
micro-batch or the alert dispatcher forever.

- ``connect_timeout``: a server that does not answer the handshake;
- TCP keepalives: a connection whose peer vanished mid-query (about 10 + 3 x 5 s);
- :func:`retrying`: a short outage (a restart, a failover) is ridden out inside the call; a longer
  one fails it, and the caller's supervisor takes over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT_S = 10
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """``psycopg.connect`` with the bounds above (keyword arguments pass through)."""
    return psycopg.connect(url, **({"connect_timeout": CONNECT_TIMEOUT_S} | KEEPALIVES | kwargs))


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
