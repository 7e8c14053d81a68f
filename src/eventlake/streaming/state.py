"""Small per-query state in PostgreSQL: committed batches, per-partition event-time watermarks, and the
silver table version each batch started from.

All are keyed by batch id, so that a replayed batch (after a crash between the sink commit and
Spark's checkpoint commit) sees exactly the state it saw the first time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from eventlake import pg

DDL = """
CREATE TABLE IF NOT EXISTS eventlake_stream_commits (
    query        text NOT NULL,
    batch_id     bigint NOT NULL,
    rows_written bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (query, batch_id)
);
CREATE TABLE IF NOT EXISTS eventlake_stream_watermarks (
    query           text NOT NULL,
    batch_id        bigint NOT NULL,
    kafka_partition integer NOT NULL,
    max_event_time  timestamptz NOT NULL,
    PRIMARY KEY (query, batch_id, kafka_partition)
);
CREATE TABLE IF NOT EXISTS eventlake_stream_batches (
    query          text NOT NULL,
    batch_id       bigint NOT NULL,
    silver_version bigint NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (query, batch_id)
);
"""


def ensure_state_tables(url: str) -> None:
    with pg.connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('eventlake_stream_state'))")
        conn.execute(DDL)


@dataclass(frozen=True)
class BatchStart:
    #: the silver table version the batch first started from (its replays read the same)
    silver_version: int
    #: newest valid event time per Kafka partition over all earlier batches
    prior: dict[int, dt.datetime]
    #: the batch ran before (a retry after a crash or failure): sinks must check what it wrote
    replay: bool


def begin_batch(url: str, query: str, batch_id: int, silver_version: Callable[[], int]) -> BatchStart:
    """Record that ``batch_id`` starts (before it writes anything), or find that it ran before."""
    with pg.connect(url) as conn:
        row = conn.execute(
            "SELECT silver_version FROM eventlake_stream_batches WHERE query = %s AND batch_id = %s", (query, batch_id)
        ).fetchone()
        if row is None:
            version = silver_version()
            conn.execute(
                "INSERT INTO eventlake_stream_batches (query, batch_id, silver_version) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (query, batch_id, version),
            )
        else:
            version = int(row[0])
        prior = prior_maxima(conn, query, batch_id)
    return BatchStart(version, prior, replay=row is not None)


def prior_maxima(conn: psycopg.Connection[Any], query: str, batch_id: int) -> dict[int, dt.datetime]:
    """Newest valid event time per Kafka partition over the batches of ``query`` before ``batch_id``
    (the lateness horizon the batch starts from)."""
    rows = conn.execute(
        "SELECT kafka_partition, max(max_event_time) FROM eventlake_stream_watermarks"
        " WHERE query = %s AND batch_id < %s GROUP BY kafka_partition",
        (query, batch_id),
    ).fetchall()
    return {int(p): t for p, t in rows}


def save_watermarks(url: str, query: str, batch_id: int, maxima: Iterable[tuple[int, dt.datetime]]) -> None:
    with pg.connect(url) as conn:
        conn.cursor().executemany(
            "INSERT INTO eventlake_stream_watermarks (query, batch_id, kafka_partition, max_event_time)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(query, batch_id, p, t) for p, t in maxima],
        )
