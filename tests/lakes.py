"""A small real lake shared by the batch and Airflow tests: three sources streamed through every
layer by the real pipeline, with a real Slack receiver and SMTP server configured as alert channels."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from pydantic import BaseModel, SecretStr

from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.services import Stack, endpoints
from eventlake.streaming.jobs import start_jobs
from tests.alerting.receivers import Mailbox, Webhook, free_port, smtp_server
from tests.conftest import MakeSettings
from tests.streaming import recompute
from tests.streaming.test_pipeline import delta_rows, pipeline_settings
from tests.streams import send

SOURCES = ("user_activity", "iot_sensors", "transactions")
#: 2026-01-01T23:59:52Z: 12 s of events at 100 ev/s of event time cross midnight (two days, two hours)
START = 1_767_311_992_000
JAN1, JAN2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


@dataclass
class Lake:
    settings: Settings
    live: Endpoints
    webhook: Webhook
    mailbox: Mailbox
    spark: Any
    produced: int = 0  # records per source so far

    def produce(self, count: int, *, seed: int, start_ms: int) -> None:
        """Send ``count`` records per source (5 % faults), then stream them through every layer."""
        summary = send(self.settings, self.live, SOURCES, count, seed=seed, start_ms=start_ms, faults=0.05)
        assert summary.delivered == 3 * count
        self.produced += count
        start_jobs(self.spark, self.settings, self.live, ["bronze", "silver", "gold"], until_idle=True)

    def records(self, source: str) -> list[dict[str, Any]]:
        """The valid records of ``source`` as produced, read back from Kafka (independent of eventlake)."""
        raw = recompute.read_topic(
            self.live.kafka_bootstrap, self.live.registry_url, self.settings.topics.raw(source), self.produced
        )
        assert raw.total == self.produced
        return raw.records

    def config_file(self, path: Path) -> Path:
        """These settings as a YAML file (``EVENTLAKE_CONFIG``) for a CLI run in another process."""
        path.write_text(yaml.safe_dump(_plain(self.settings)))
        return path


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@contextmanager
def small_lake(stack: Stack, make_settings: MakeSettings, spark: Any, tmp: Path) -> Iterator[Lake]:
    hook, mailbox = Webhook(), Mailbox()
    port = free_port()
    try:
        with smtp_server(port, mailbox):
            settings = pipeline_settings(
                stack,
                make_settings,
                tmp,
                # Small batches: many small files for maintenance to compact.
                streaming={"max_offsets_per_trigger": 400},
                slack={"webhook_url": hook.url},
                smtp={"host": "127.0.0.1", "port": port},
                alert={"email_to": "data@example.com", "email_from": "eventlake@example.com"},
            )
            lake = Lake(settings, endpoints(settings), hook, mailbox, spark)
            lake.produce(1200, seed=3, start_ms=START)
            yield lake
    finally:
        hook.close()


def pg_rows(url: str, name: str, where: str = "TRUE") -> list[tuple[Any, ...]]:
    """A PostgreSQL table's rows without ``updated_at`` (its last column)."""
    with psycopg.connect(url) as conn:
        return [tuple(r[:-1]) for r in conn.execute(f"SELECT * FROM {name} WHERE {where}")]


def lake_rows(settings: Settings, layer: str, name: str) -> list[tuple[Any, ...]]:
    """A Delta table's rows (delta-rs, independent of Spark), values in column-name order."""
    return [tuple(v for _, v in sorted(r.items())) for r in delta_rows(settings, layer, name)]


def exact_rows(settings: Settings, layer: str, name: str) -> Counter[str]:
    """A Delta table's rows as a multiset, for tables whose values are copied, not computed."""
    return Counter(json.dumps(r, sort_keys=True, default=str) for r in delta_rows(settings, layer, name))


def assert_rows_close(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]], what: str) -> None:
    """The same aggregate rows: keyed by their non-float values, floats equal to 1e-9 (a sum of
    doubles depends on the order Spark adds them in, which varies from run to run)."""

    def key(row: tuple[Any, ...]) -> tuple[str, ...]:
        return tuple(str(v) for v in row if not isinstance(v, float))

    g, w = {key(r): r for r in got}, {key(r): r for r in want}
    assert len(g) == len(got) and len(w) == len(want), f"{what}: rows are not unique by their keys"
    assert set(g) == set(w), f"{what}: {len(set(g) - set(w))} rows more, {len(set(w) - set(g))} missing"
    for k, row in w.items():
        for a, b in zip(g[k], row, strict=True):
            ok = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) if isinstance(b, float) else a == b
            assert ok, (what, k, g[k], row)
