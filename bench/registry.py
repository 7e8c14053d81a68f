"""Schema Registry throughput: registrations/s and cached lookups/s, against the HTTP ceiling.

Starts PostgreSQL + the registry in a throw-away EVENTLAKE_HOME, then measures, over one
keep-alive HTTP connection:

* ``register``: POST /subjects/<new>/versions with a new schema each time (a DB transaction each);
* ``lookup``:   GET /schemas/ids/<id> (served from the in-memory id cache);
* ``ceiling``:  GET /health/live (no storage at all): the HTTP stack's own rate, the baseline.

Each line prints ops/s, p50/p99 latency and the ratio to the ceiling; finally the registry's RSS.
Run: ``.venv/bin/python bench/registry.py [--n 2000]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from eventlake.config import load_settings
from eventlake.services.postgres import PostgresService
from eventlake.services.registry import RegistryService


def measure(n: int, op: Callable[[int], None]) -> tuple[float, float, float]:
    lat = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        op(i)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    q = statistics.quantiles(lat, n=100)
    return n / total, q[49] * 1000, q[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as home:
        settings = load_settings(home=Path(home))
        pg, reg = PostgresService(settings), RegistryService(settings)
        pg.start()
        reg.start()
        try:
            url = reg.endpoint()
            assert url is not None
            with httpx.Client(base_url=url, timeout=30) as c:
                c.get("/health/live").raise_for_status()

                def schema(i: int) -> str:
                    fields = [{"name": "event_id", "type": "string"}, {"name": f"f{i}", "type": "long"}]
                    return json.dumps({"type": "record", "name": "B", "fields": fields})

                def register(i: int) -> None:
                    c.post(f"/subjects/bench-{i}-value/versions", json={"schema": schema(i)}).raise_for_status()

                sid = c.post("/subjects/bench-lookup-value/versions", json={"schema": schema(-1)}).json()["id"]

                def lookup(_i: int) -> None:
                    c.get(f"/schemas/ids/{sid}").raise_for_status()

                def ceiling(_i: int) -> None:
                    c.get("/health/live").raise_for_status()

                base: dict[str, float] = {}
                for name, op in (("ceiling", ceiling), ("lookup", lookup), ("register", register)):
                    rate, p50, p99 = measure(args.n, op)
                    base[name] = rate
                    ratio = rate / base["ceiling"]
                    print(
                        f"registry {name:<9} {rate:9.0f} ops/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                        f"ratio_to_ceiling {ratio:.2f}"
                    )
            proc = reg.running_process()
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20 if proc else float("nan")
            print(f"registry rss_mb {rss:.0f}")
        finally:
            reg.stop()
            pg.stop()


if __name__ == "__main__":
    main()
