"""The serving path: raw topics to PostgreSQL gold in well under a second, exactly once.

One Python consumer reads every raw topic (``read_committed``), judges each record as silver does
(:mod:`~eventlake.serving.classify`, :mod:`~eventlake.serving.state`), folds it into the exact cells
of its windows, and every ``serving.flush_ms`` upserts the rows of the windows that changed, in one
PostgreSQL transaction with its Kafka positions (:mod:`~eventlake.serving.offsets`).

**Exactly once.** A gold row is the whole aggregate of its window, never an increment, so writing it
again writes the same row. After a crash the path seeks every partition back to its stored
``replay_offset`` and re-reads up to its ``next_offset`` without writing (the state then equals the
one it had when it last committed; the rows it wrote never go backwards), then writes every held
window once and goes on. Spark's lake path (bronze, silver, quarantine, DLQ, DQ, Delta gold) is
unchanged and independent: it no longer writes PostgreSQL gold while this path runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from eventlake import pg
from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.kafka.security import client_security
from eventlake.observability.metrics import SERVING_DELAY, SERVING_FLUSH, SERVING_RECORDS, SINK_ROWS
from eventlake.quality.rules import Quality
from eventlake.serving.classify import Decoder
from eventlake.serving.offsets import BEGINNING, Position, load, save
from eventlake.serving.state import MINUTE_MS, SourceState
from eventlake.streaming.schemas import SchemaCache
from eventlake.streaming.specs import SPECS_BY_SOURCE, upsert_statement

log = logging.getLogger(__name__)

TP = tuple[str, int]


class _Partition:
    """One partition's position and its commit boundaries: (offset, newest event ms there)."""

    def __init__(self, source: str, start: int, newest: int | None, committed: int | None) -> None:
        self.source = source
        self.next = start  # BEGINNING until the first record
        self.committed = committed  # replay ends here (None: nothing was ever committed)
        self.saved: int | None = committed
        self.boundaries: list[tuple[int, int | None]] = [(start, newest)]
        self.eof = False

    def replay_point(self, floor_ms: int) -> tuple[int, int | None]:
        """The newest boundary before which every record is older than ``floor_ms`` (see offsets)."""
        keep = 0
        for i, (_, newest) in enumerate(self.boundaries):
            if newest is None or newest < floor_ms:
                keep = i
        del self.boundaries[:keep]
        return self.boundaries[0]


class ServingPath:
    """Run with :meth:`run`; ``stop`` is asked between polls."""

    def __init__(self, settings: Settings, live: Endpoints, quality: Quality) -> None:
        self.settings, self.live = settings, live
        s = settings.streaming
        self.sources = [src for src in settings.topics.sources if src in SPECS_BY_SOURCE]
        self.topics = {settings.topics.raw(src): src for src in self.sources}
        self.states = {
            src: SourceState(
                SPECS_BY_SOURCE[src], lateness_s=s.allowed_lateness_s, max_hold_s=settings.serving.max_hold_s
            )
            for src in self.sources
        }
        self.decoders = {
            src: Decoder(
                SchemaCache(live.registry_url, f"{settings.topics.raw(src)}-value"),
                quality.source(src),
                future_skew_s=s.max_future_skew_s,
            )
            for src in self.sources
        }
        self.consumer = Consumer(
            {
                "bootstrap.servers": live.kafka_bootstrap,
                "group.id": "eventlake-serving",  # required by librdkafka; positions live in PostgreSQL
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
                "log_level": 3,
                **client_security(settings).librdkafka(),
            }
        )
        self.parts: dict[TP, _Partition] = {}
        self.replaying = False
        self._last_commit = 0.0
        self._rewrite_all = False
        self._newest_ts = 0  # Kafka timestamp (ms) of the newest record read
        self._conn: psycopg.Connection | None = None
        self._upserts = {spec.table: upsert_statement(spec) for src in self.sources for spec in SPECS_BY_SOURCE[src]}

    # -- start ---------------------------------------------------------------------------------
    def _assign(self, stored: dict[TP, Position]) -> None:
        new: list[TopicPartition] = []
        for topic, source in self.topics.items():
            meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
            if meta.error is not None:
                raise KafkaException(meta.error)
            for p in sorted(meta.partitions):
                if (topic, p) in self.parts:
                    continue
                pos = stored.get((topic, p))
                if pos is None:
                    part = _Partition(source, BEGINNING, None, None)
                else:
                    part = _Partition(source, pos.replay_offset, pos.replay_newest_ms, pos.next_offset)
                    if pos.replay_newest_ms is not None:
                        self.states[source].newest[p] = pos.replay_newest_ms
                    self.replaying = self.replaying or pos.next_offset > max(pos.replay_offset, 0)
                self.parts[(topic, p)] = part
                new.append(TopicPartition(topic, p, part.next))
        if new:
            self.consumer.incremental_assign(new)
            log.info("serving path assigned", extra={"partitions": len(new), "replaying": self.replaying})

    # -- loop ----------------------------------------------------------------------------------
    def run(self, stop: Callable[[], bool], *, until_idle: bool = False) -> None:
        """Consume, apply and flush until ``stop()`` (or, ``until_idle``, until every partition is read
        to its end); flushes once more before it returns."""
        self._assign(load(self.live.postgres_url, self.topics))
        flush_s = self.settings.serving.flush_ms / 1000
        parent = os.getppid()
        last_flush = last_assign = time.monotonic()
        try:
            while not stop():
                for msg in self.consumer.consume(5000, 0.05):
                    self._handle(msg)
                now = time.monotonic()
                if self.replaying and self._caught_up():
                    self._end_replay()
                elif not self.replaying and now - last_flush >= flush_s:
                    self.flush()
                    last_flush = now
                if until_idle and not self.replaying and all(p.eof for p in self.parts.values()):
                    break
                if now - last_assign >= 30:
                    self._assign({})  # partitions added to a topic are read from their start
                    last_assign = now
                if os.getppid() != parent:
                    log.error("serving path: the process that started it is gone; stopping")
                    break
            if not self.replaying:
                self.flush(force=True)
        finally:
            self.consumer.close()
            self._close_connection()

    def _handle(self, msg: Message) -> None:
        err = msg.error()
        tp = (str(msg.topic()), int(msg.partition() or 0))
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                if tp in self.parts:
                    self.parts[tp].eof = True
                return
            if err.fatal():
                raise KafkaException(err)
            # librdkafka retries by itself (a broker restarting, a leader moving): say so, go on.
            log.warning("serving path: Kafka error", extra={"topic": tp[0], "error": err.str()})
            return
        part = self.parts[tp]
        part.eof = False
        part.next = int(msg.offset() or 0) + 1
        source = part.source
        ts = msg.timestamp()[1]
        self._newest_ts = max(self._newest_ts, ts)
        record = self.decoders[source].decode(msg.value(), ts)
        if record is None:
            SERVING_RECORDS.labels(source, "invalid").inc()
            return
        self.states[source].add(tp[1], record)

    def _caught_up(self) -> bool:
        return all(p.eof or p.committed is None or p.next >= p.committed for p in self.parts.values())

    def _end_replay(self) -> None:
        """The state now equals the one last committed: write every held window once, then go live."""
        self.replaying = False
        for state in self.states.values():
            state.advance()  # before taking rows: windows below the committed floor are final, and partial here
        self._write(everything=True)
        held = {src: st.held for src, st in self.states.items()}
        log.info("serving path replayed its open windows", extra={"held": held})

    def flush(self, *, force: bool = False) -> None:
        """Upsert the changed windows with the positions; positions alone every ``commit_every_s``."""
        self._write(everything=False, force=force)

    def _write(self, *, everything: bool, force: bool = True) -> None:
        everything = everything or self._rewrite_all
        rows = [(spec, r) for st in self.states.values() for spec, r in st.changed_rows(everything=everything) if r]
        moved = [tp for tp, p in self.parts.items() if p.next not in (p.saved, BEGINNING)]
        due = force or time.monotonic() - self._last_commit >= self.settings.serving.commit_every_s
        if not rows and not (moved and due):
            return
        # The floors after this commit (windows are dropped only once their last change is written).
        floors = {src: st.next_floor() for src, st in self.states.items()}
        positions = []
        for tp in moved:
            p = self.parts[tp]
            st = self.states[p.source]
            replay, replay_newest = p.replay_point(floors[p.source] * MINUTE_MS)
            positions.append(Position(tp[0], tp[1], p.next, st.newest.get(tp[1]), replay, replay_newest))
        t = time.perf_counter()
        try:
            conn = self._connection()
            with conn.transaction():
                cur = conn.cursor()
                for spec, batch in rows:
                    cur.executemany(self._upserts[spec.table], batch)
                save(conn, positions)
        except psycopg.Error as err:
            # Nothing is lost: the positions did not move, and the next write rewrites every held window.
            self._rewrite_all = True
            self._close_connection()
            log.error("serving path: PostgreSQL write failed; retrying", extra={"error": str(err)[:500]})
            return
        self._rewrite_all = False
        SERVING_FLUSH.observe(time.perf_counter() - t)
        if rows and self._newest_ts > 0:
            SERVING_DELAY.observe(max(0.0, time.time() - self._newest_ts / 1000))
        for spec, batch in rows:
            SINK_ROWS.labels("postgres", spec.table).inc(len(batch))
        for src, st in self.states.items():
            st.advance(floors[src])
        for tp, pos in zip(moved, positions, strict=True):
            p = self.parts[tp]
            p.saved = pos.next_offset
            p.boundaries.append((pos.next_offset, pos.newest_ms))
        self._last_commit = time.monotonic()
        for src, st in self.states.items():
            for outcome in ("applied", "late", "duplicate", "beyond_hold"):
                SERVING_RECORDS.labels(src, outcome).inc(st.outcomes.pop(outcome, 0))

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = pg.connect(self.live.postgres_url)
        return self._conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                log.debug("closing a broken PostgreSQL connection failed", exc_info=True)
            self._conn = None
