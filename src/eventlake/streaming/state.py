"""Small per-query state in PostgreSQL: committed batches, per-partition event-time watermarks, the
silver table version each batch started from, how far Delta gold is merged and Delta
``quality/metrics`` exported, and the runs of each query.

All are keyed by batch key, so that a replayed batch (after a crash between the sink commit and
Spark's checkpoint commit) sees exactly the state it saw the first time. A batch key is Spark's
batch id plus the base of the query's *run*: a run is one checkpoint (Spark's query id), and a new
checkpoint (``eventlake stream reset``, or one deleted by hand) starts its batch ids at 0 again.
Its base is then past every key the query used before, so its batches are never taken for replays
of the old run's (which silently skipped their writes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

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
CREATE TABLE IF NOT EXISTS eventlake_stream_gold (
    query          text NOT NULL,
    batch_id       bigint NOT NULL,
    merged_through timestamptz NOT NULL,
    PRIMARY KEY (query, batch_id)
);
CREATE TABLE IF NOT EXISTS eventlake_stream_dq (
    query    text NOT NULL,
    batch_id bigint NOT NULL,
    PRIMARY KEY (query, batch_id)
);
CREATE TABLE IF NOT EXISTS eventlake_stream_runs (
    query      text NOT NULL,
    query_id   text NOT NULL,
    base       bigint NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (query, query_id)
);
CREATE TABLE IF NOT EXISTS eventlake_stream_resets (
    query            text PRIMARY KEY,
    starting_offsets text NOT NULL,
    reset_at         timestamptz NOT NULL DEFAULT now()
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


def run_base(url: str, query: str, query_id: str) -> int:
    """The batch-key base of the run ``query_id`` of ``query`` (recorded the first time it is asked).

    The first run a query ever has gets 0 (so a checkpoint from before runs were recorded keeps its
    keys); each later one starts after the newest key recorded for the query."""
    with pg.connect(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"eventlake_stream_runs:{query}",))
        row = conn.execute(
            "SELECT base FROM eventlake_stream_runs WHERE query = %s AND query_id = %s", (query, query_id)
        ).fetchone()
        if row is not None:
            return int(row[0])
        first = conn.execute("SELECT 1 FROM eventlake_stream_runs WHERE query = %s LIMIT 1", (query,)).fetchone()
        newest = conn.execute(
            "SELECT greatest((SELECT max(batch_id) FROM eventlake_stream_batches WHERE query = %s),"
            " (SELECT max(base) FROM eventlake_stream_runs WHERE query = %s))",
            (query, query),
        ).fetchone()
        base = 0 if first is None or newest is None or newest[0] is None else int(newest[0]) + 1
        conn.execute(
            "INSERT INTO eventlake_stream_runs (query, query_id, base) VALUES (%s, %s, %s)", (query, query_id, base)
        )
    return base


def pending_reset(url: str, query: str) -> str | None:
    """Where a reset query starts reading (Spark ``startingOffsets``), until its new checkpoint has offsets."""
    with pg.connect(url) as conn:
        row = conn.execute("SELECT starting_offsets FROM eventlake_stream_resets WHERE query = %s", (query,)).fetchone()
    return None if row is None else str(row[0])


def record_reset(url: str, query: str, starting_offsets: str) -> None:
    with pg.connect(url) as conn:
        conn.execute(
            "INSERT INTO eventlake_stream_resets (query, starting_offsets) VALUES (%s, %s)"
            " ON CONFLICT (query) DO UPDATE SET starting_offsets = excluded.starting_offsets, reset_at = now()",
            (query, starting_offsets),
        )


def clear_reset(url: str, query: str) -> None:
    with pg.connect(url) as conn:
        conn.execute("DELETE FROM eventlake_stream_resets WHERE query = %s", (query,))


@dataclass(frozen=True)
class BatchStart:
    #: the silver table version the batch first started from (its replays read the same)
    silver_version: int
    #: newest valid event time per Kafka partition over all earlier batches
    prior: dict[int, dt.datetime]
    #: the batch ran before (a retry after a crash or failure): sinks must check what it wrote
    replay: bool
    #: Delta gold holds every window ending at or before this, as of the earlier batches (None: no
    #: batch recorded a merge)
    gold_through: dt.datetime | None = None
    #: Delta ``quality/metrics`` holds the query's DQ rows of every batch up to this one, as of the
    #: earlier batches (None: no batch recorded an export)
    dq_through: int | None = None


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
        through = conn.execute(
            "SELECT (SELECT max(merged_through) FROM eventlake_stream_gold WHERE query = %s AND batch_id < %s),"
            " (SELECT max(batch_id) FROM eventlake_stream_dq WHERE query = %s AND batch_id < %s)",
            (query, batch_id, query, batch_id),
        ).fetchone()
    gold, dq = through if through is not None else (None, None)
    return BatchStart(version, prior, replay=row is not None, gold_through=gold, dq_through=dq)


def prior_maxima(conn: psycopg.Connection[Any], query: str, batch_id: int) -> dict[int, dt.datetime]:
    """Newest valid event time per Kafka partition over the batches of ``query`` before ``batch_id``
    (the lateness horizon the batch starts from)."""
    rows = conn.execute(
        "SELECT kafka_partition, max(max_event_time) FROM eventlake_stream_watermarks"
        " WHERE query = %s AND batch_id < %s GROUP BY kafka_partition",
        (query, batch_id),
    ).fetchall()
    return {int(p): t for p, t in rows}


def settled_newest(url: str, query: str) -> dt.datetime | None:
    """Newest valid event time over the batches of ``query`` before the last one begun: those all
    completed (micro-batches run one after another), the last may have been interrupted after it
    saved its watermarks and before its writes committed."""
    return _settled(url, query, "eventlake_stream_watermarks", "max_event_time")


def settled_gold_through(url: str, query: str) -> dt.datetime | None:
    """How far Delta gold is merged by the batches before the last one begun (see :func:`settled_newest`)."""
    return _settled(url, query, "eventlake_stream_gold", "merged_through")


def _settled(url: str, query: str, table: str, column: str) -> dt.datetime | None:
    """The greatest ``column`` of ``table`` over ``query``'s batches before the last one begun."""
    statement = sql.SQL(
        "SELECT max({column}) FROM {table} WHERE query = %s"
        " AND batch_id < (SELECT max(batch_id) FROM eventlake_stream_batches WHERE query = %s)"
    ).format(column=sql.Identifier(column), table=sql.Identifier(table))
    with pg.connect(url) as conn:
        row = conn.execute(statement, (query, query)).fetchone()
    return row[0] if row is not None else None


def save_gold_through(url: str, query: str, batch_id: int, through: dt.datetime) -> None:
    """Record that ``batch_id`` merges into Delta gold every window ending at or before ``through``
    (before its MERGEs commit: a replay of the batch decides the same and merges again)."""
    with pg.connect(url) as conn:
        conn.execute(
            "INSERT INTO eventlake_stream_gold (query, batch_id, merged_through) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (query, batch_id, through),
        )


def save_dq_export(url: str, query: str, batch_id: int) -> None:
    """Record that ``batch_id`` appends to Delta ``quality/metrics`` the DQ rows of every batch of
    ``query`` after the last such record (before the append commits, as :func:`save_gold_through`)."""
    with pg.connect(url) as conn:
        conn.execute(
            "INSERT INTO eventlake_stream_dq (query, batch_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (query, batch_id),
        )


def dq_exports(url: str, query: str) -> tuple[int | None, int | None]:
    """The newest two batches recorded as exporting ``query``'s DQ rows, newest first (see
    :func:`save_dq_export`)."""
    with pg.connect(url) as conn:
        rows = conn.execute(
            "SELECT batch_id FROM eventlake_stream_dq WHERE query = %s ORDER BY batch_id DESC LIMIT 2", (query,)
        ).fetchall()
    newest, before = [int(r[0]) for r in rows] + [None] * (2 - len(rows))
    return newest, before


def save_watermarks(url: str, query: str, batch_id: int, maxima: Iterable[tuple[int, dt.datetime]]) -> None:
    with pg.connect(url) as conn:
        conn.cursor().executemany(
            "INSERT INTO eventlake_stream_watermarks (query, batch_id, kafka_partition, max_event_time)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(query, batch_id, p, t) for p, t in maxima],
        )
