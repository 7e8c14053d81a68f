"""PostgreSQL gold tables: exact rows upserted in one transaction with a commits row per batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from psycopg import sql
from pyspark.sql import DataFrame

from eventlake import pg
from eventlake.observability.metrics import SINK_COMMIT, SINK_ROWS
from eventlake.streaming.specs import GoldSpec, upsert_statement


def upsert(url: str, spec: GoldSpec, query: str, batch_id: int, rows: list[tuple[object, ...]]) -> bool:
    """Upsert ``rows`` (in ``spec.columns`` order) once per (query, batch id). False if already applied."""
    with pg.connect(url) as conn, conn.transaction():
        done = conn.execute(
            "INSERT INTO eventlake_stream_commits (query, batch_id, rows_written) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (query, batch_id, len(rows)),
        ).fetchone()
        if done is None:
            return False
        if rows:
            conn.cursor().executemany(upsert_statement(spec), rows)
    return True


def replace_windows(
    url: str, spec: GoldSpec, lo: dt.datetime, hi: dt.datetime, rows: Iterable[Sequence[object]]
) -> tuple[int, int]:
    """Make ``rows`` (in ``spec.columns`` order) the whole content of ``spec.table`` for
    ``lo <= window_start < hi``, in one transaction: a rerun of the same range leaves the same rows,
    and a window that no longer has events is gone. The rows stream in by ``COPY`` (a day of
    1-minute windows can be a million rows). Returns (rows deleted, rows written)."""
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(spec.table), sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
    )
    written = 0
    with pg.connect(url) as conn, conn.transaction():
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} WHERE window_start >= %s AND window_start < %s").format(sql.Identifier(spec.table)),
            (lo, hi),
        ).rowcount
        with conn.cursor().copy(copy) as out:
            for row in rows:
                out.write_row(row)
                written += 1
    return deleted, written


@dataclass(frozen=True)
class PostgresUpsert:
    """Upsert a (small, aggregated) batch of gold rows into ``spec.table``, once per batch id.

    The batch is collected to the driver: it holds one row per touched window and group, bounded by
    the groups, not by the events.
    """

    url: str
    spec: GoldSpec
    query: str
    kind: str = "postgres"

    @property
    def target(self) -> str:
        return self.spec.table

    def write(self, batch: DataFrame, batch_id: int, *, replay: bool = True) -> None:
        self.write_rows([tuple(r[c] for c in self.spec.columns) for r in batch.collect()], batch_id)

    def write_rows(self, rows: list[tuple[object, ...]], batch_id: int) -> bool:
        """Upsert collected rows; False if the batch was applied before (then nothing is counted)."""
        with SINK_COMMIT.labels(self.kind, self.spec.table).time():
            applied = upsert(self.url, self.spec, self.query, batch_id, rows)
        if applied:
            SINK_ROWS.labels(self.kind, self.spec.table).inc(len(rows))
        return applied
