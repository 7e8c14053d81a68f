"""One dashboard snapshot per refresh interval, shared by every client, and a cap on clients.

Before this, every server-sent-events client ran the snapshot queries on a PostgreSQL connection of
its own every ``refresh_s``: N browsers were N connections and N query rounds per interval, and
enough of them exhausted PostgreSQL's ``max_connections`` (and the dashboard stopped for everyone).
Now one background task computes the snapshot (while anyone listens), renders its SSE frame once,
and every client sends that same frame; ``/api/snapshot`` reuses it while it is fresh. Clients
beyond ``max_clients`` are refused (the caller answers 503 + ``Retry-After``) instead of degrading
everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from eventlake.observability.metrics import DASHBOARD_CLIENTS, DASHBOARD_REJECTED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One computed snapshot (or the problem that stopped it), rendered once for every client."""

    version: int
    at: float  # time.monotonic() when computed
    text: str  # the SSE frame
    data: dict[str, Any] | None  # None: a problem frame


def snapshot_frame(data: dict[str, Any]) -> str:
    return f"event: snapshot\ndata: {json.dumps(data, default=str)}\n\n"


def problem_frame(err: BaseException) -> str:
    return f"event: problem\ndata: {json.dumps({'detail': type(err).__name__})}\n\n"


class Slot:
    """A client's place under the cap; :meth:`release` is idempotent (called from more than one
    place on the way out, so that no path leaks a place)."""

    def __init__(self, hub: SnapshotHub) -> None:
        self._hub: SnapshotHub | None = hub

    def release(self) -> None:
        hub, self._hub = self._hub, None
        if hub is not None:
            hub._leave()


class SnapshotHub:
    """Computes ``compute()`` (blocking: run in a worker thread) at most once per ``refresh_s``,
    while at least one client listens, and fans the result out to every client."""

    def __init__(self, compute: Callable[[], dict[str, Any]], refresh_s: float, max_clients: int) -> None:
        self._compute = compute
        self.refresh_s = refresh_s
        self.max_clients = max_clients
        self.clients = 0
        self._frame: Frame | None = None
        self._version = 0
        self._changed: asyncio.Condition | None = None
        self._lock: asyncio.Lock | None = None
        self._kick: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # ----- clients
    def join(self) -> Slot | None:
        """A place for one more SSE client, or None when ``max_clients`` are connected."""
        if self.clients >= self.max_clients:
            DASHBOARD_REJECTED.inc()
            return None
        self.clients += 1
        DASHBOARD_CLIENTS.set(self.clients)
        return Slot(self)

    def _leave(self) -> None:
        self.clients -= 1
        DASHBOARD_CLIENTS.set(self.clients)

    async def stream(self, slot: Slot) -> AsyncIterator[str]:
        """The SSE frames of one client: the current snapshot if fresh, then every new one."""
        self._ensure_running()
        assert self._changed is not None and self._kick is not None
        seen = 0
        try:
            if self._frame is None or time.monotonic() - self._frame.at >= self.refresh_s:
                self._kick.set()  # stale or none yet: compute now rather than at the next tick
            while True:
                async with self._changed:
                    while self._version <= seen:
                        await self._changed.wait()
                    assert self._frame is not None
                    frame = self._frame
                seen = frame.version
                yield frame.text
        finally:
            slot.release()

    # ----- /api/snapshot
    async def current(self) -> dict[str, Any]:
        """The newest snapshot if younger than ``refresh_s``, else a new one (raises what compute raises)."""
        self._ensure_running()
        assert self._lock is not None
        async with self._lock:
            frame = self._frame
            if frame is not None and frame.data is not None and time.monotonic() - frame.at < self.refresh_s:
                return frame.data
            data = await asyncio.to_thread(self._compute)
            await self._publish(Frame(self._version + 1, time.monotonic(), snapshot_frame(data), data))
            return data

    # ----- the one task that queries
    def _ensure_running(self) -> None:
        if self._changed is None:  # created here: they belong to the server's event loop
            self._changed, self._lock, self._kick = asyncio.Condition(), asyncio.Lock(), asyncio.Event()
        if self.clients > 0 and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name="dashboard-snapshots")

    async def _publish(self, frame: Frame) -> None:
        assert self._changed is not None
        async with self._changed:
            self._frame, self._version = frame, frame.version
            self._changed.notify_all()

    async def _run(self) -> None:
        assert self._lock is not None and self._kick is not None
        while self.clients > 0:
            async with self._lock:
                fresh = self._frame is not None and time.monotonic() - self._frame.at < self.refresh_s / 2
                if not fresh:  # /api/snapshot may just have computed one
                    try:
                        data = await asyncio.to_thread(self._compute)
                        frame = Frame(self._version + 1, time.monotonic(), snapshot_frame(data), data)
                    except Exception as err:  # shown to every client as a problem frame; the task goes on
                        log.warning(
                            "dashboard snapshot failed",
                            extra={"error": f"{type(err).__name__}: {err}"[:300], "clients": self.clients},
                        )
                        frame = Frame(self._version + 1, time.monotonic(), problem_frame(err), None)
                    await self._publish(frame)
            self._kick.clear()
            with contextlib.suppress(TimeoutError):  # the tick; a kick (stale frame, new client) is earlier
                await asyncio.wait_for(self._kick.wait(), self.refresh_s)
