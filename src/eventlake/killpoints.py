"""Kill points: named places in a micro-batch where a crash matters (after a Delta commit, before the
PostgreSQL one, ...). ``EVENTLAKE_KILL_AT=<point>[@<n>]`` makes the process that reaches ``point``
for the ``n``-th time (default 1) kill itself with SIGKILL there, exactly as a crash at that place
would; the chaos tests (``tests/chaos/test_kill_points.py``) use it to prove every commit point
exactly-once. Unset (production), :func:`reached` is one comparison.

Points of the one-pass query (``eventlake.streaming.pipeline``): ``begun`` (the batch recorded in
PostgreSQL, nothing written yet), ``<kind>:<target>`` after each sink's write (``delta:bronze/<source>``,
``delta:silver/<source>``, ``delta:quarantine/<source>``, ``kafka:<dlq topic>``, ``delta:gold/<table>``,
``delta:quality/metrics``, and ``postgres:<gold table>`` when the pass writes PostgreSQL gold),
``hand_off`` (until idle: the serving path's positions moved, PostgreSQL gold not yet written),
``watermarks`` and ``quality`` (their PostgreSQL commits), and ``done``
(every write of the batch committed, Spark's checkpoint commit not yet written); and ``flush`` (a
graceful stop's export of the DQ rows to Delta recorded, not yet appended).
"""

from __future__ import annotations

import os
import signal
import threading

VARIABLE = "EVENTLAKE_KILL_AT"


def _parse(spec: str | None) -> tuple[str | None, int]:
    if not spec:
        return None, 0
    point, _, nth = spec.partition("@")
    return point, int(nth) if nth else 1


_POINT, _NTH = _parse(os.environ.get(VARIABLE))
_seen = 0
_lock = threading.Lock()


def reached(point: str) -> None:
    """Kill this process with SIGKILL if it is the configured point's ``n``-th arrival."""
    global _seen  # noqa: PLW0603 - one counter per process, by design
    if point != _POINT:
        return
    with _lock:
        _seen += 1
        if _seen == _NTH:
            os.kill(os.getpid(), signal.SIGKILL)
