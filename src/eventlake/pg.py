"""PostgreSQL connections of the library: bounded, so a server that stops answering fails the call
within seconds (the batch retries, the dispatcher's next round tries again) instead of hanging a
micro-batch or the alert dispatcher forever.

- ``connect_timeout``: a server that does not answer the handshake;
- TCP keepalives: a connection whose peer vanished mid-query (about 10 + 3 x 5 s).
"""

from __future__ import annotations

from typing import Any

import psycopg

CONNECT_TIMEOUT_S = 10
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """``psycopg.connect`` with the bounds above (keyword arguments pass through)."""
    return psycopg.connect(url, **({"connect_timeout": CONNECT_TIMEOUT_S} | KEEPALIVES | kwargs))
