"""Live-dashboard load: PostgreSQL connections and snapshot queries as SSE clients grow.

A throw-away PostgreSQL and a real dashboard process (``eventlake.services.dashboard``); for each
client count, that many server-sent-events clients (httpx streams in threads) connect; over
``--refreshes`` refresh intervals the bench samples ``pg_stat_activity`` for the dashboard's
``application_name`` and reads ``eventlake_dashboard_snapshots_total``. Prints per count: the
dashboard's PostgreSQL connections (max seen), snapshots computed per refresh, and the ratio to the
one-client run of the same bench (a connection and a query round per client per refresh would make
both ratios the client count). Then one client over ``max_clients``: its status and Retry-After.

Run: ``.venv/bin/python bench/dashboard.py [--clients 1,10,50] [--refresh-s 1] [--refreshes 5]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the SSE client is the tests' own

import httpx  # noqa: E402
from tests.observability.test_dashboard_clients import Client, computed, dashboard_connections, until  # noqa: E402

from eventlake.config import load_settings  # noqa: E402
from eventlake.services.dashboard import DashboardService  # noqa: E402
from eventlake.services.postgres import PostgresService  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,10,50")
    parser.add_argument("--refresh-s", type=float, default=1.0)
    parser.add_argument("--refreshes", type=int, default=5)
    parser.add_argument("--pool-size", type=int, default=4)
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as home:
        settings = load_settings(
            home=Path(home),
            dashboard={"refresh_s": args.refresh_s, "max_clients": max(counts), "pool_size": args.pool_size},
        )
        pg, board = PostgresService(settings), DashboardService(settings)
        pg.start()
        results: list[tuple[int, int, float]] = []
        try:
            board.start()
            url, pg_url = board.endpoint(), pg.endpoint()
            assert url is not None and pg_url is not None
            for n in counts:
                clients = [Client(url) for _ in range(n)]
                try:
                    until(lambda cs=clients: all(len(c.frames) >= 2 for c in cs), 120, f"{n} clients streaming")
                    before, t0 = computed(url), time.monotonic()
                    conns = 0
                    while time.monotonic() - t0 < args.refreshes * args.refresh_s:
                        conns = max(conns, dashboard_connections(pg_url))
                        time.sleep(args.refresh_s / 4)
                    per_refresh = (computed(url) - before) / ((time.monotonic() - t0) / args.refresh_s)
                    results.append((n, conns, per_refresh))
                    if n == max(counts):
                        over = httpx.get(f"{url}/api/events", timeout=10)
                        print(
                            f"dashboard client {n + 1} over max_clients={n}: HTTP {over.status_code},"
                            f" Retry-After {over.headers.get('Retry-After')}"
                        )
                finally:
                    for c in clients:
                        c.close()
        finally:
            board.stop()
            pg.stop()
    _, base_conns, base_q = results[0]
    for n, conns, q in results:
        print(
            f"dashboard {n} SSE clients: PostgreSQL connections max {conns} (pool {args.pool_size}),"
            f" snapshots computed {q:.2f} per refresh; vs {results[0][0]} client: connections"
            f" x{conns / max(base_conns, 1):.2f}, queries x{q / base_q if base_q else 0:.2f}"
            f" (one per client would be x{n / results[0][0]:.0f})"
        )


if __name__ == "__main__":
    main()
