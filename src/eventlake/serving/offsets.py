"""Where the serving path is, per Kafka partition, stored in the same transaction as its gold rows.

``next_offset`` is the first record not yet applied; ``replay_offset`` the position to read from
again after a restart to rebuild the live state exactly (every record before it belongs to windows
that can no longer change), with ``replay_newest_ms``, the partition's lateness horizon there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from eventlake import pg

DDL = """
CREATE TABLE IF NOT EXISTS eventlake_serving_offsets (
    topic            text NOT NULL,
    kafka_partition  integer NOT NULL,
    next_offset      bigint NOT NULL,
    newest_ms        bigint,
    replay_offset    bigint NOT NULL,
    replay_newest_ms bigint,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
)
"""
#: ``replay_offset`` of a partition read from its start (librdkafka's OFFSET_BEGINNING)
BEGINNING = -2


@dataclass(frozen=True)
class Position:
    topic: str
    partition: int
    next_offset: int
    newest_ms: int | None
    replay_offset: int
    replay_newest_ms: int | None


def ensure_offsets_table(url: str) -> None:
    with pg.connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('eventlake_serving_offsets'))")
        conn.execute(DDL)


_SELECT = (
    "SELECT topic, kafka_partition, next_offset, newest_ms, replay_offset, replay_newest_ms"
    " FROM eventlake_serving_offsets WHERE topic = ANY(%s)"
)


def read(conn: psycopg.Connection, topics: Iterable[str], *, lock: bool = False) -> dict[tuple[str, int], Position]:
    """The stored positions of ``topics``; ``lock``: their rows stay locked until ``conn``'s
    transaction ends (a read-then-move, as the hand-off's)."""
    rows = conn.execute(_SELECT + (" FOR UPDATE" if lock else ""), (list(topics),)).fetchall()
    return {(r[0], r[1]): Position(*r) for r in rows}


def load(url: str, topics: Iterable[str]) -> dict[tuple[str, int], Position]:
    with pg.connect(url) as conn:
        return read(conn, topics)


def save(conn: psycopg.Connection, positions: Iterable[Position]) -> None:
    conn.cursor().executemany(
        "INSERT INTO eventlake_serving_offsets"
        " (topic, kafka_partition, next_offset, newest_ms, replay_offset, replay_newest_ms)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (topic, kafka_partition) DO UPDATE SET next_offset = excluded.next_offset,"
        " newest_ms = excluded.newest_ms, replay_offset = excluded.replay_offset,"
        " replay_newest_ms = excluded.replay_newest_ms, updated_at = now()",
        [(p.topic, p.partition, p.next_offset, p.newest_ms, p.replay_offset, p.replay_newest_ms) for p in positions],
    )
