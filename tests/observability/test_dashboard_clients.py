"""Many live-dashboard clients against a real dashboard process and a real PostgreSQL: the
dashboard's PostgreSQL connections stay within its pool whatever the number of browsers, every
client is sent the same snapshot (one query round per refresh, not one per client), and a client
over ``dashboard.max_clients`` is answered 503 with Retry-After until a place frees up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import psycopg

from eventlake.observability.dashboard import APPLICATION_NAME
from eventlake.services.dashboard import DashboardService
from eventlake.services.postgres import PostgresService
from tests.conftest import MakeSettings

CLIENTS = 6
POOL = 2
REFRESH_S = 0.5


@dataclass
class Client:
    """One SSE client in a thread: keeps every snapshot frame's data line until told to stop."""

    url: str
    status: int | None = None
    frames: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with httpx.stream("GET", f"{self.url}/api/events", timeout=30) as response:
                self.status = response.status_code
                event = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: ") and event == "snapshot":
                        self.frames.append(line)
                    if self.stop.is_set():
                        return
        except BaseException as err:
            self.error = err

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def dashboard_connections(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,))
        return int(row.fetchone()[0])  # type: ignore[index]


def computed(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    line = next(x for x in text.splitlines() if x.startswith("eventlake_dashboard_snapshots_total "))
    return float(line.split()[1])


def test_many_clients_share_one_snapshot_within_the_pool_and_the_cap(make_settings: MakeSettings) -> None:
    settings = make_settings(
        "board-clients", dashboard={"refresh_s": REFRESH_S, "max_clients": CLIENTS, "pool_size": POOL}
    )
    pg, board = PostgresService(settings), DashboardService(settings)
    pg.start()
    clients: list[Client] = []
    try:
        board.start()
        url, pg_url = board.endpoint(), pg.endpoint()
        assert url is not None and pg_url is not None
        clients = [Client(url) for _ in range(CLIENTS)]
        until(lambda: all(len(c.frames) >= 2 for c in clients), 60, "every client to get snapshots")
        assert [c.status for c in clients] == [200] * CLIENTS

        # PostgreSQL sees the pool, not the clients.
        seen = []
        for _ in range(10):
            seen.append(dashboard_connections(pg_url))
            time.sleep(REFRESH_S / 2)
        assert 1 <= max(seen) <= POOL, seen

        # One query round per refresh for everyone: the same frames, computed once each.
        before = computed(url)
        marks = [len(c.frames) for c in clients]
        until(lambda: all(len(c.frames) >= m + 3 for c, m in zip(clients, marks, strict=True)), 60, "3 more frames")
        after = computed(url)
        later = [set(c.frames[m:]) for c, m in zip(clients, marks, strict=True)]
        assert set.intersection(*later), "no snapshot was sent to every client"
        # Each client got >= 3 new snapshots; one round per client per refresh would be >= 18.
        assert after - before <= max(len(x) for x in later) + 1, (before, after, [len(x) for x in later])

        # Over the cap: 503 with Retry-After, nothing streamed, no extra connection.
        over = httpx.get(f"{url}/api/events", timeout=10)
        assert over.status_code == 503 and int(over.headers["Retry-After"]) >= 1
        assert "too many dashboard clients" in over.json()["detail"]
        # A client leaving gives its place back.
        clients[0].close()

        def admitted() -> bool:
            with httpx.stream("GET", f"{url}/api/events", timeout=10) as response:
                return response.status_code == 200

        until(admitted, 30, "a freed place")
        assert max(dashboard_connections(pg_url) for _ in range(3)) <= POOL
        assert all(c.error is None for c in clients[1:]), [c.error for c in clients]
    finally:
        for c in clients:
            c.close()
        board.stop()
        pg.stop()


def test_the_shared_snapshot_rides_out_a_postgres_restart(make_settings: MakeSettings) -> None:
    """PostgreSQL stops under a connected client: it is told (a problem frame, readiness names
    postgres), the snapshot task goes on, and once PostgreSQL is back the pool reconnects and the
    same client gets snapshots again without reconnecting."""
    settings = make_settings("board-restart", dashboard={"refresh_s": REFRESH_S, "pool_size": POOL})
    pg, board = PostgresService(settings), DashboardService(settings)
    pg.start()
    client: Client | None = None
    try:
        board.start()
        url = board.endpoint()
        assert url is not None
        problems: list[str] = []
        client = Client(url)
        until(lambda: len(client.frames) >= 1, 60, "a first snapshot")
        pg.stop()
        ready = httpx.get(f"{url}/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["failing"] == ["postgres"]
        with httpx.stream("GET", f"{url}/api/events", timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("event: problem"):
                    problems.append(line)
                    break
        assert problems
        frames = len(client.frames)
        pg.start()
        until(lambda: httpx.get(f"{url}/health/ready", timeout=10).status_code == 200, 60, "ready again")
        until(lambda: len(client.frames) > frames, 60, "snapshots again on the same stream")
        assert client.error is None and client.status == 200
    finally:
        if client is not None:
            client.close()
        board.stop()
        pg.stop()
