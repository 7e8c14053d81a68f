"""The one-pass query: Kafka is read once per micro-batch, and that batch writes every layer.

::

    raw.<source> (read_committed) ──► foreachBatch(OnePass)
        ├─► bronze/<source>          Delta append, marker (query, batch)      [side thread]
        ├─ decode (JVM from_avro) ─ validate ─ future ─ late
        │    ├─► quarantine/<source>  Delta append, marker                     [side thread]
        │    └─► dlq.<source>         Kafka, reason header (at-least-once)     [side thread]
        ├─ dedup against the open-window state (no silver scan)
        │    └─► silver/<source>      Delta append, marker                     [side thread]
        ├─ gold: touched windows from open-window state (this batch's rows included)
        │    ├─► PostgreSQL gold_*    upsert + commits row, one transaction (only with serving.enabled
        │    │                        off, or until idle with the hand-off: else the serving path,
        │    │                        eventlake.serving, writes it sub-second); the hand-off moves
        │    │                        the serving path's positions first (eventlake.serving.handoff)
        │    └─► gold/<table>         Delta MERGE of the windows closed since the last MERGE, once
        │                             every streaming.gold_delta_every_s of event time (until idle:
        │                             the open ones too; into a new table: an append)  [side thread]
        └─ DQ: dq_metrics + alerts (PostgreSQL, once per batch); quality/metrics (Delta, marker):
                 dq_metrics of the batches since the last export, with gold's MERGEs  [side thread]

The batch is recorded in PostgreSQL (``eventlake_stream_batches``) before it writes anything, so a
batch that finds its record is a replay and every sink checks what it already wrote. Independent
writes run on side threads so their Delta commits overlap (Spark runs jobs from several threads at
once); the batch ends when every write has. Each write is idempotent by (query, batch id), so a
batch replayed after kill -9 changes nothing that its first run wrote, and writes what it did not.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, NamedTuple

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from eventlake import killpoints, pg
from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.kafka.security import client_security
from eventlake.observability.metrics import (
    ANOMALIES,
    DQ_CHECKED,
    DQ_FAILED,
    SINK_ROWS,
    STREAM_WATERMARK_DELAY,
)
from eventlake.quality.anomaly import detect
from eventlake.quality.rules import Detector, SourceRules
from eventlake.quality.store import METRICS_SCHEMA, BatchFacts, record_batch, stored_rows
from eventlake.serving.handoff import hand_off
from eventlake.serving.state import EPOCH, MINUTE_MS, horizon_floor, keep_ms
from eventlake.streaming import silver as sv
from eventlake.streaming.gold import aggregate, touched
from eventlake.streaming.paths import checkpoint, clear_interrupted_writes, has_offsets, table, with_trigger
from eventlake.streaming.schemas import SchemaCache
from eventlake.streaming.sinks import DeadLetters, DeltaAppend, DeltaUpsert, PostgresUpsert
from eventlake.streaming.sinks.delta import newest_commit
from eventlake.streaming.specs import SPECS_BY_SOURCE, GoldSpec, longest_window_minutes, state_columns
from eventlake.streaming.state import (
    BatchStart,
    begin_batch,
    clear_reset,
    dq_exports,
    pending_reset,
    run_base,
    save_dq_export,
    save_gold_through,
    save_watermarks,
    settled_gold_through,
    settled_newest,
)
from eventlake.streaming.tables import BRONZE_COLUMNS
from eventlake.streaming.windows import OpenWindows, hold, release

log = logging.getLogger(__name__)

#: Layers a pass can write; gold needs silver's decisions, so asking for gold writes silver too.
LAYERS = ("bronze", "silver", "gold")


def query_name(source: str) -> str:
    return f"pipeline_{source}"


def gold_phase(settings: Settings, source: str) -> dt.timedelta:
    """How far ``source``'s Delta gold MERGE boundaries are shifted: its place among
    ``topics.sources`` times ``streaming.gold_delta_every_s`` (0, 1/3 and 2/3 of it for three). The
    sources' event times move together: unshifted, their queries all merged in the same batches
    (soak run I: 45-92 s batches, four MERGEs at once on two cores)."""
    sources = settings.topics.sources
    place = sources.index(source) / len(sources) if source in sources else 0.0
    return dt.timedelta(seconds=settings.streaming.gold_delta_every_s) * place


def merge_due(lo: dt.datetime, hi: dt.datetime, every: dt.timedelta, phase: dt.timedelta) -> bool:
    """Whether the lateness horizon passed a MERGE boundary between ``lo`` (the last MERGE's) and
    ``hi`` (now): boundaries lie every ``every`` of event time, shifted by ``phase``
    (:func:`gold_phase`). A boundary less than half an interval after the last MERGE is skipped
    (the first MERGE falls anywhere), so MERGEs are half to one and a half intervals apart.
    ``every`` 0: always. Config and event times only: a replayed batch decides as its first run."""
    if every <= dt.timedelta(0):
        return True
    step, shift = every.total_seconds(), phase.total_seconds()
    return (hi.timestamp() - shift) // step > (lo.timestamp() + step / 2 - shift) // step


class OnePass:
    """The ``foreachBatch`` function of one source's query."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        source: str,
        live: Endpoints,
        *,
        layers: set[str],
        counts: sv.SilverCounts,
        rules: SourceRules,
        detectors: tuple[Detector, ...] = (),
        detect_each_batch: bool = True,
        hand_off: bool = False,
        until_idle: bool = False,
    ) -> None:
        self.spark, self.settings, self.source, self.live = spark, settings, source, live
        # Until idle, a batch's Delta gold MERGE takes the open windows too, so that ``flush`` has
        # nothing left when that batch was the run's last (one MERGE per table instead of two).
        self.until_idle = until_idle
        self.name = query_name(source)
        self.bronze = "bronze" in layers
        self.silver = bool({"silver", "gold"} & layers)
        self.gold = "gold" in layers
        # With the serving path on, PostgreSQL gold is its job (sub-second); the pass keeps Delta gold.
        # ``hand_off`` (until idle): the pass writes it, and moves the serving path's positions first.
        self.hand_off = self.gold and hand_off
        self.gold_pg = self.gold and (hand_off or not settings.serving.enabled)
        self.counts, self.rules = counts, rules
        self.specs = SPECS_BY_SOURCE[source]
        self.detectors = tuple(d for d in detectors if d.table in {s.table for s in self.specs})
        self.detect_each_batch = detect_each_batch  # else the caller calls ``detect`` (PostgreSQL gold complete)
        self.schemas = SchemaCache(live.registry_url, f"{settings.topics.raw(source)}-value")
        self.silver_path = table(settings, "silver", source)
        # A file per core, not per Kafka partition: the cores write in parallel either way.
        cores = spark.sparkContext.defaultParallelism
        self.sinks_bronze = DeltaAppend(
            table(settings, "bronze", source), f"{self.name}_bronze", f"bronze/{source}", files=cores
        )
        self.sinks_silver = DeltaAppend(
            self.silver_path, f"{self.name}_silver", f"silver/{source}", merge_schema=True, files=cores
        )
        self.sinks_quarantine = DeltaAppend(
            table(settings, "quarantine", source), f"{self.name}_quarantine", f"quarantine/{source}", files=cores
        )
        self.sinks_dq = DeltaAppend(
            table(settings, "quality", "metrics"), f"{self.name}_dq", "quality/metrics", files=1
        )
        self.dlq = DeadLetters(live.kafka_bootstrap, settings.topics.dlq(source), client_security(settings))
        self.gold_pg_sinks = [PostgresUpsert(live.postgres_url, s, f"{self.name}:{s.table}") for s in self.specs]
        self.gold_delta = [
            DeltaUpsert(table(settings, "gold", s.table), tuple(s.key_columns), f"gold/{s.table}") for s in self.specs
        ]
        self.windows = OpenWindows(spark, self.silver_path, state_columns(source))
        # The rows of a window: the longest window and a minute of truncation back from its end.
        self.span = dt.timedelta(minutes=longest_window_minutes(source) + 1)
        # Rows of windows that can still change (the lateness horizon) and of ids a batch can repeat.
        self.keep = self._lateness + self.span
        self.gold_every = dt.timedelta(seconds=settings.streaming.gold_delta_every_s)
        self.gold_phase = gold_phase(settings, source)
        # Up to nine writes a batch; six at once keep Delta gold's MERGEs from queueing behind the rest.
        self.pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix=f"{self.name}-sink")
        self._timings: dict[str, float] = {}
        self._replay = True
        self._query_id: str | None = None
        self._bound = threading.Event()
        self.base: int | None = None  # batch key = base + Spark's batch id (streaming.state)
        self._newest: dt.datetime | None = None  # newest valid event time after the last good batch
        self._merged: dt.datetime | None = None  # Delta gold holds the windows ending by this, likewise
        self._done: int | None = None  # the last batch that completed in this process
        self._merged_all: int | None = None  # the last completed batch whose MERGEs took every window
        self._empty_silver: int | None = None  # a silver version read as just created: no rows

    def bind(self, query_id: str) -> None:
        """The started query's id (its checkpoint's identity): batches wait for it."""
        self._query_id = query_id
        self._bound.set()

    def __call__(self, batch: DataFrame, spark_batch_id: int) -> None:
        self._timings = {}
        if not self._bound.wait(60) or self._query_id is None:
            raise RuntimeError(f"{self.name}: the query's id never arrived")
        if self.base is None:
            query_id = self._query_id
            self.base = pg.retrying(
                lambda: run_base(self.live.postgres_url, self.name, query_id), what=f"{self.name} run"
            )
        # Every guard below keys on this, not on Spark's batch id, which restarts at 0 with a new checkpoint.
        batch_id = self.base + spark_batch_id
        with self._phase("begin"):
            # Recorded before any write: a batch that finds its record is a replay, and its sinks check.
            start = pg.retrying(
                lambda: begin_batch(
                    self.live.postgres_url, self.name, batch_id, self._silver_version if self.silver else lambda: -1
                ),
                what=f"{self.name} begin batch {batch_id}",
            )
        self._replay = start.replay
        killpoints.reached("begun")
        side: list[Future[Any]] = []
        try:
            try:
                if self.silver:
                    self._silver_and_gold(batch, batch_id, start, side)
                elif self.bronze:
                    self.sinks_bronze.write(batch.select(*BRONZE_COLUMNS), batch_id, replay=self._replay)
            finally:
                error = _wait(side)  # never leave a write running past its batch
            if error is not None:
                raise error
            killpoints.reached("done")
        except BaseException as err:
            log.error(
                "pass batch failed",
                extra={"query": self.name, "batch_id": batch_id, "seconds": self._timings, "error": repr(err)[:2000]},
            )
            self.windows.reset()  # the batch fails; its retry rebuilds the state from silver
            raise

    def _side(self, sink: _Sink, df: DataFrame, batch_id: int) -> Future[Any]:
        return self.pool.submit(self._write, sink, df, batch_id)

    def _write(self, sink: _Sink, df: DataFrame, batch_id: int) -> None:
        with self._phase(f"{sink.kind}:{sink.target}"):
            sink.write(df, batch_id, replay=self._replay)
        killpoints.reached(f"{sink.kind}:{sink.target}")

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Time a step of the batch; the batch's log line lists them (where a slow batch spends its time).
        Its Spark jobs carry the step as their description (Spark UI, event log: CPU per step)."""
        sc = self.spark.sparkContext
        before = sc.getLocalProperty("spark.job.description")  # per thread (pyspark pins threads)
        sc.setJobDescription(f"{self.name} {name}")
        t = time.perf_counter()
        try:
            yield
        finally:
            self._timings[name] = round(time.perf_counter() - t, 3)
            sc.setJobDescription(before)  # type: ignore[arg-type]  # None clears it

    def _silver_and_gold(self, batch: DataFrame, batch_id: int, start: BatchStart, side: list[Future[Any]]) -> None:
        version, prior, before = start.silver_version, start.prior, max(start.prior.values(), default=None)
        merged = self._merged_through(start.gold_through, before)
        checked, reader = self._checked(batch)
        if self.bronze:
            # From the held batch: Kafka is read, and the records materialised, once.
            side.append(self._side(self.sinks_bronze, checked.select(*BRONZE_COLUMNS), batch_id))
        late: DataFrame | None = None
        repeats: DataFrame | None = None
        aggregates: list[DataFrame] = []
        try:
            optional = sv.optional_fields(reader) if self.rules.of_type("schema_drift") else []
            classified, stats, late = self._classify(checked, prior, optional)
            quarantined = stats.quarantined
            if quarantined:
                bad = sv.quarantine_rows(classified)
                side.append(self._side(self.sinks_quarantine, bad, batch_id))
                side.append(self._side(self.dlq, bad, batch_id))
            inserted, maxima = 0, stats.maxima()
            self._hand_off(batch_id, stats, prior, maxima)
            if (oldest := stats.oldest_valid()) is not None:
                unique, repeats = self._dedup(classified, oldest, version, merged)
                # Without repeats the new rows are the valid ones, whose count and newest the stats hold.
                known = (stats.valid, max(maxima.values())) if repeats is None else None
                with self._phase("state_add"):
                    inserted = self.windows.add(unique, known)  # held from now on; dropped again if the batch fails
                side.append(self._side(self.sinks_silver, unique, batch_id))
            elif self.gold_pg:
                for sink in self.gold_pg_sinks:
                    sink.write_rows([], batch_id)  # the batch is applied (nothing to add)
            self._save_watermarks(batch_id, maxima)
            newest = max([*prior.values(), *maxima.values()], default=None)
            through, merges = (
                self._merge_plan(
                    merged, newest, stats.minutes() if inserted else [], batch_id, unrecorded=start.gold_through is None
                )
                if self.gold and newest is not None and (newest != before or inserted)
                else (None, {})
            )
            with self._phase("gold"):
                aggregates = self._gold(stats.minutes() if self.gold_pg and inserted else [], merges, batch_id, side)
            merged = merged if through is None else through
            facts = stats.facts(self.rules, optional, prior=prior, ids=stats.schema_ids(), dupes=stats.valid - inserted)
            # The lake's DQ copy goes with Delta gold's MERGEs (its first batch, and every batch without gold).
            export = not self.gold or through is not None or start.dq_through is None
            with self._phase("quality"):
                self._record_quality(batch_id, facts)
                if export:
                    side.append(self._side(self.sinks_dq, self._record_export(start.dq_through, batch_id), batch_id))
            with self._phase("wait_writes"):
                for f in side:
                    f.result()  # the batch is done when every write is; a failed write fails the batch
            if self.detect_each_batch:
                with self._phase("detect"):
                    self.detect()  # after the writes: it reads PostgreSQL gold, which a side thread may write
            self._completed(batch_id, merges)
            if newest is not None:
                self._settle(newest, merged)
            self._count(stats, inserted, quarantined)
        finally:
            for held in (*aggregates, repeats, late, checked):
                release(held)

    def _classify(
        self, checked: DataFrame, prior: dict[int, dt.datetime], optional: list[str]
    ) -> tuple[DataFrame, sv.BatchStats, DataFrame | None]:
        """The batch with its late rows marked, its stats, and the held late keys (release them; None:
        no row is late).

        The stats come first: when their bounds rule lateness out (``BatchStats.may_have_late``: an
        in-order stream), the batch skips the lateness window (a shuffle and sort of its keys) and
        every later step its late lookup (a broadcast job each). Otherwise the stats are taken again
        once the late rows are marked."""
        lateness_s = self.settings.streaming.allowed_lateness_s
        with self._phase("classify"):
            stats = sv.BatchStats.of(checked, self.rules, optional)
        if not stats.may_have_late(prior, lateness_s):
            return checked, stats, None
        with self._phase("late"):
            late = hold(sv.late_keys(checked, prior=prior, lateness_s=lateness_s))
        classified = sv.mark_late(checked, late)  # a broadcast lookup on the held batch: cheap to redo per use
        try:
            with self._phase("reclassify"):
                return classified, sv.BatchStats.of(classified, self.rules, optional), late
        except BaseException:
            release(late)
            raise

    def _hand_off(
        self, batch_id: int, stats: sv.BatchStats, prior: dict[int, dt.datetime], maxima: dict[int, dt.datetime]
    ) -> None:
        """With ``hand_off``: move the serving path's positions to this batch's end
        (:mod:`eventlake.serving.handoff`), before its PostgreSQL gold rows are written."""
        if not self.hand_off:
            return
        ends = stats.ends()
        newest = {p: _ms(t) for p, t in prior.items()}
        for p, t in maxima.items():
            newest[p] = max(_ms(t), newest.get(p, _ms(t)))
        cfg = self.settings
        floor = horizon_floor(
            newest.values(),
            keep=keep_ms(self.specs, cfg.streaming.allowed_lateness_s),
            max_hold=cfg.serving.max_hold_s * 1000,
        )
        topic, url = cfg.topics.raw(self.source), self.live.postgres_url
        with self._phase("hand_off"):
            pg.retrying(
                lambda: hand_off(url, topic, ends, newest, None if floor is None else floor * MINUTE_MS),
                what=f"{self.name} hand-off {batch_id}",
            )
        killpoints.reached("hand_off")

    def _save_watermarks(self, batch_id: int, maxima: dict[int, dt.datetime]) -> None:
        pg.retrying(
            lambda: save_watermarks(self.live.postgres_url, self.name, batch_id, maxima.items()),
            what=f"{self.name} watermarks {batch_id}",
        )
        killpoints.reached("watermarks")

    def _completed(self, batch_id: int, merges: dict[str, _Merge]) -> None:
        """Every write of the batch is done; ``flush`` starts from it."""
        self._done = batch_id
        self._merged_all = batch_id if merges and all(m.open for m in merges.values()) else None

    def _settle(self, newest: dt.datetime, merged: dt.datetime | None) -> None:
        """The batch is done: drop the rows no window can need any more; ``flush`` starts from here."""
        self.windows.evict(self._floor(newest - self.keep, merged))
        self._newest, self._merged = newest, merged

    def _floor(self, since: dt.datetime, merged: dt.datetime | None) -> dt.datetime:
        """``since``, or earlier: the state must also hold the rows of windows not merged into Delta gold."""
        return since if merged is None else min(since, merged - self.span)

    def _merged_through(self, recorded: dt.datetime | None, before: dt.datetime | None) -> dt.datetime | None:
        """How far Delta gold holds every window before this batch (None: nothing merged, or no gold).
        Without a record (a lake from before the records), the old rule: each batch merged through its
        lateness horizon."""
        if not self.gold:
            return None
        if recorded is not None:
            return recorded
        return before - self._lateness if before is not None else None

    def _checked(self, batch: DataFrame) -> tuple[DataFrame, str]:
        """The batch decoded and judged by every rule but lateness (held: release it), and the reader
        schema it was decoded into."""
        with self._phase("schemas"):
            # Every version of the subject is a decode branch: no Spark job to find the batch's ids first.
            writers = self.schemas.subject_writers()
            reader = self.schemas.reader
        with self._phase("read_decode"):
            # Materialised with its lineage cut (not just cached): the side threads' writes each plan a
            # DataFrame built on it, and planning canonicalises every from_avro, whose options map
            # (CreateMap) is evaluated by one shared, non-thread-safe builder. Concurrent planning
            # failed batches with "IndexOutOfBoundsException ... ArrayBasedMapBuilder.put".
            checked = sv.check(
                sv.decode(sv.with_schema_id(batch), writers, reader),
                self.rules,
                list(writers),
                reader,
                future_skew_s=self.settings.streaming.max_future_skew_s,
            )
            return hold(checked), reader

    def _dedup(
        self, classified: DataFrame, oldest: dt.datetime, version: int, merged: dt.datetime | None
    ) -> tuple[DataFrame, DataFrame | None]:
        """The batch's valid events not seen before (first per event_id, minus the state's ids), and the
        held keys of the repeats it leaves out (release them; None: there are none). Only those few
        keys are materialised: the new rows are a cheap lookup on the held batch, so the state and the
        silver write each derive them again instead of caching every silver column of the batch."""
        with self._phase("state"):
            # The state must hold every window the batch can touch, every id it can repeat, and every
            # window Delta gold still waits for.
            since = oldest.replace(second=0, microsecond=0) - self.span
            self.windows.ensure(version, self._floor(since, merged), empty=version == self._empty_silver)
        valid = classified.where(F.col("_reason").isNull())
        with self._phase("dedup"):
            repeats = hold(sv.repeated_keys(valid, self.windows.rows(oldest)))
            if repeats.isEmpty():  # the usual case: the steps that follow need no lookup
                release(repeats)
                return sv.without_repeats(valid, None), None
        return sv.without_repeats(valid, repeats), repeats

    @property
    def _lateness(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.streaming.allowed_lateness_s)

    def _silver_version(self) -> int:
        """Silver's newest version; remembered when it is the table's creation (no rows: the state
        needs no read of it)."""
        version, created = newest_commit(self.spark, self.silver_path)
        if created:
            self._empty_silver = version
        return version

    def _gold(
        self, minutes: list[dt.datetime], merges: dict[str, _Merge], batch_id: int, side: list[Future[Any]]
    ) -> list[DataFrame]:
        """Write gold on side threads (they overlap the lake writes; the state is read here, and changes
        only once every write of the batch is done): to PostgreSQL the exact rows of every window the
        batch's events fall in (``minutes``; none: no PostgreSQL write), to Delta the ``merges``
        (:meth:`_merge_plan`). A table written to both aggregates its rows once, over the range that
        holds both sets of windows whole, and holds the result for both writes, one after the other on
        one side thread (the list returned gets the held DataFrames: release them after the batch)."""
        held: list[DataFrame] = []
        for spec, sink, delta in zip(self.specs, self.gold_pg_sinks, self.gold_delta, strict=True):
            wants: list[tuple[dt.datetime, dt.datetime, Column, _Sink]] = []
            if minutes:
                starts = touched(minutes, spec)
                end = starts[-1] + dt.timedelta(minutes=spec.window_minutes)
                wants.append((starts[0], end, _starts_in(starts), sink))
            if (merge := merges.get(spec.table)) is not None:
                wants.append((merge.lo, merge.hi, merge.windows, delta))
            rows = self.windows.rows(min(w[0] for w in wants), max(w[1] for w in wants)) if wants else None
            if rows is None:
                assert not minutes, "the state holds this batch's rows"
                continue
            targets = [(which, target) for _, _, which, target in wants]
            side.append(self.pool.submit(self._write_gold, spec, rows, targets, batch_id, held))
        return held

    def _write_gold(
        self, spec: GoldSpec, rows: DataFrame, targets: list[tuple[Column, _Sink]], batch_id: int, held: list[DataFrame]
    ) -> None:
        """Aggregate ``rows`` into ``spec``'s windows, then write each target's part of them, in turn;
        for two targets the windows are held (into ``held``), aggregated once. On a side thread: the
        tables' plans are built at once, not one after another on the batch's thread."""
        windows = aggregate(rows, spec)
        if len(targets) > 1:
            with self._phase(f"aggregate:{spec.table}"):
                windows = hold(windows)
            held.append(windows)
        for which, target in targets:
            self._write(target, windows.where(which), batch_id)

    def _merge_plan(
        self,
        lo: dt.datetime | None,
        newest: dt.datetime,
        minutes: list[dt.datetime],
        batch_id: int,
        *,
        unrecorded: bool,
    ) -> tuple[dt.datetime | None, dict[str, _Merge]]:
        """Whether to MERGE into Delta ``gold/<table>`` the windows that closed (their end fell behind
        the lateness horizon ``hi``) since the last MERGE (``lo``): once the horizon passes the next
        boundary of this source (:func:`merge_due`: every ``streaming.gold_delta_every_s`` of event
        time), and at once when the batch changed a window already merged (a lagging partition).
        Returns how far Delta gold holds every window after the MERGEs (None: the batch merges
        nothing; it is recorded first), and per table the rows and windows to merge (:meth:`_gold`
        writes them).

        Delta gold is the lake's record of final windows; each MERGE is a dozen Spark jobs and a
        commit, so gathering closed windows keeps them off most batches. The decision depends only on
        the batch's input and its earlier batches' records: a replayed batch merges what its first run
        did. ``flush`` writes the rest (closed or open) at a graceful stop.

        Until idle, a MERGE that has closed windows to write takes the open ones too (``_Merge.open``):
        should the batch be the run's last, ``flush`` then has no gold left to write. Delta gold holds
        those windows' values as of the batch, as after a ``flush``; they are merged again when they
        close. A MERGE with nothing closed stays empty (no commit) rather than merge open windows only."""
        hi = newest - self._lateness
        tables = []  # each gold table with its window width and the closed windows the batch touched
        for spec in self.specs:
            width = dt.timedelta(minutes=spec.window_minutes)
            tables.append((spec, width, [w for w in touched(minutes, spec) if w + width <= hi]))
        changed = lo is not None and any(w + width <= lo for _, width, late in tables for w in late)
        if not (unrecorded or lo is None or changed or merge_due(lo, hi, self.gold_every, self.gold_phase)):
            return None, {}
        # The first MERGE (``lo`` None) holds the windows this batch closed; later ones those closed since ``lo``.
        everything = self.until_idle and (lo is not None or any(late for _, _, late in tables))
        through = hi if lo is None else max(lo, hi)
        pg.retrying(
            lambda: save_gold_through(self.live.postgres_url, self.name, batch_id, through),
            what=f"{self.name} gold through {batch_id}",
        )
        merges = {}
        for spec, width, late in tables:
            # Only the rows of windows that closed since the last MERGE (end in (lo, hi]) or that a
            # lagging partition changed: the state's older rows belong to windows merged before.
            since = [lo - width] if lo is not None else [self.windows.floor or newest]
            closed = F.lit(True) if everything else F.col("window_end") <= F.lit(hi)
            if lo is not None:
                closed &= F.col("window_end") > F.lit(lo)
                # The rest of ``late`` (closed after ``lo``) is in the range already.
                if again := [w for w in late if w + width <= lo]:
                    closed |= _starts_in(again)
            # The pieces' floors bound the rows from below; every row is older than ``newest``'s minute's end.
            upto = newest.replace(second=0, microsecond=0) + dt.timedelta(minutes=1) if everything else hi
            merges[spec.table] = _Merge(min(since + late), upto, closed, everything)
        return through, merges

    def flush(self) -> None:
        """MERGE every window not yet merged (its end after the last MERGE's horizon: open, or closed
        and gathered) into Delta gold, at a graceful stop or the end of ``--until-idle``: Delta gold
        then holds every window of silver. Idempotent; the windows are merged again when they close.

        A batch that failed, or that the stop interrupted, dropped the state with it: the windows are
        then read back from silver, as of the last batch known to have completed (windows that closed
        in the interrupted batch are merged again too: same values).

        Delta ``quality/metrics`` gets the DQ rows of the batches completed since its last export. The
        writes run at once, on the side threads."""
        writes = [self.pool.submit(self._flush_quality, self._done)] if self._done is not None else []
        try:
            # Nothing to merge when the last batch merged every window, and its state is still here.
            if self.gold and not (self.windows.loaded and self._done is not None and self._merged_all == self._done):
                writes += self._flush_gold()
        finally:
            error = _wait(writes)
        if error is not None:
            raise error

    def _flush_gold(self) -> list[Future[Any]]:
        """Submit the MERGEs of :meth:`flush`."""
        newest, merged = self._newest, self._merged
        if not self.windows.loaded:
            url = self.live.postgres_url
            newest = pg.retrying(lambda: settled_newest(url, self.name), what=f"{self.name} flush horizon")
            if newest is None:
                return []  # no batch completed: nothing in silver
            merged = pg.retrying(lambda: settled_gold_through(url, self.name), what=f"{self.name} flush gold")
            self.windows.ensure(self._silver_version(), self._floor(newest - self.keep, merged))
        if newest is None:
            return []
        lo = newest - self._lateness if merged is None else min(merged, newest - self._lateness)
        writes = []
        for spec, delta in zip(self.specs, self.gold_delta, strict=True):
            # Rows from the oldest such window's start: the state's older rows may cut a merged window.
            rows = self.windows.rows(lo - dt.timedelta(minutes=spec.window_minutes))
            if rows is not None:
                windows = aggregate(rows, spec).where(F.col("window_end") > F.lit(lo))
                writes.append(self.pool.submit(delta.write, windows, -1))
        return writes

    def _flush_quality(self, done: int) -> None:
        """Export the DQ rows of batches through ``done`` (completed) not exported yet. From the newest
        export recorded, not this process's memory: an interrupted batch may have recorded and
        committed its own (its replay then writes nothing more, and neither does this)."""
        url = self.live.postgres_url
        after, _ = pg.retrying(lambda: dq_exports(url, self.name), what=f"{self.name} flush dq")
        if after is None or after < done:
            rows = self._record_export(after, done)
            killpoints.reached("flush")  # recorded, not appended: only ``repair_quality`` can finish it
            self.sinks_dq.write(rows, done)

    def repair_quality(self) -> None:
        """Before the query starts: append the newest recorded DQ export if it never committed. A
        batch's own export is redone by its replay; a ``flush``'s has no replay (the process died
        inside it). Same range, same marker: the replay of a batch that recorded it then skips it."""
        url = self.live.postgres_url
        newest, before = pg.retrying(lambda: dq_exports(url, self.name), what=f"{self.name} dq exports")
        if newest is not None and not self.sinks_dq.committed(self.spark, newest):
            log.info("appending an export that never committed", extra={"query": self.name, "batch_id": newest})
            self.sinks_dq.write(self._record_export(before, newest), newest, replay=False)

    def detect(self) -> None:
        """Score the windows of PostgreSQL gold that closed since the last call (anomaly detectors)."""
        if not self.gold:
            return
        with pg.connect(self.live.postgres_url) as conn:
            for d in self.detectors:
                found = detect(conn, d, self.source, self.settings.streaming.allowed_lateness_s)
                if found:
                    ANOMALIES.labels(self.source, d.name).inc(len(found))
                    log.info("anomalies", extra={"detector": d.name, "found": len(found)})

    def _record_quality(self, batch_id: int, facts: BatchFacts) -> None:
        """DQ results of the batch: PostgreSQL (and alerts), Prometheus. The lake's copy: ``_record_export``."""
        metrics = pg.retrying(
            lambda: record_batch(self.live.postgres_url, self.settings, self.rules, batch_id, facts),
            what=f"{self.name} quality {batch_id}",
        )
        killpoints.reached("quality")
        for m in metrics:
            DQ_CHECKED.labels(self.source, m.rule).inc(m.checked)
            DQ_FAILED.labels(self.source, m.rule).inc(m.failed)
        if facts.watermark is not None:
            # Event-time lag: how far the newest event of this source is behind now (0 for a replayed
            # historical stream would be a lie, so this only means "real-time lag" for live streams).
            STREAM_WATERMARK_DELAY.labels(self.name).set(
                max(0.0, (dt.datetime.now(dt.UTC) - facts.watermark).total_seconds())
            )

    def _record_export(self, after: int | None, through: int) -> DataFrame:
        """Record that batch ``through`` exports the DQ rows, and return what Delta ``quality/metrics``
        gets, as batch ``through`` (its marker) appends it: the
        ``dq_metrics`` rows (PostgreSQL, the record) of this query's batches after batch ``after``
        (None: of batch ``through`` only) through ``through``.

        The lake's copy is gathered like Delta gold: an append is a Spark job and a Delta commit, which
        every micro-batch of every source paid for a few rows. The export is recorded before it commits
        (``eventlake_stream_dq``): a replayed batch reads the same range, and its append finds its
        marker. Until then the rows are in PostgreSQL only."""
        url = self.live.postgres_url
        pg.retrying(lambda: save_dq_export(url, self.name, through), what=f"{self.name} dq export {through}")
        rows = pg.retrying(lambda: stored_rows(url, self.source, after, through), what=f"{self.name} dq {through}")
        return self.spark.createDataFrame(rows, METRICS_SCHEMA)

    def _count(self, stats: sv.BatchStats, inserted: int, quarantined: dict[str, int]) -> None:
        n_in = stats.total("n_in")
        self.counts.add(n_in, inserted, stats.valid - inserted, quarantined)
        SINK_ROWS.labels("delta", f"bronze/{self.source}").inc(n_in if self.bronze else 0)
        SINK_ROWS.labels("delta", f"silver/{self.source}").inc(inserted)
        bad = sum(quarantined.values())
        SINK_ROWS.labels("delta", f"quarantine/{self.source}").inc(bad)
        SINK_ROWS.labels("kafka", self.settings.topics.dlq(self.source)).inc(bad)
        log.info(
            "pass batch",
            extra={
                "query": self.name,
                "input": n_in,
                "inserted": inserted,
                "duplicates": stats.valid - inserted,
                "seconds": self._timings,
            },
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.windows.reset()


_Sink = DeltaAppend | DeadLetters | DeltaUpsert | PostgresUpsert


class _Merge(NamedTuple):
    """A Delta gold MERGE: the state's rows it aggregates (``lo <= event_time < hi``), which windows,
    and whether those are every window not merged yet, open ones included."""

    lo: dt.datetime
    hi: dt.datetime
    windows: Column
    open: bool = False


def _ms(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def _starts_in(starts: list[dt.datetime]) -> Column:
    """``window_start`` is one of ``starts``, as one SQL expression: ``Column.isin`` converts each
    value through py4j, and a backlog batch touches hundreds of windows (170: 0.16-0.24 s per call
    against 0.03-0.04 s; a batch made four such calls)."""
    micros = ",".join(str((t - EPOCH) // dt.timedelta(microseconds=1)) for t in starts)
    return F.expr(f"unix_micros(window_start) IN ({micros})")


def _wait(futures: list[Future[Any]]) -> BaseException | None:
    """Wait for every future; the first failure, if any."""
    errors = [e for f in futures if (e := f.exception()) is not None]
    return errors[0] if errors else None


def kafka_stream(
    spark: SparkSession, settings: Settings, source: str, bootstrap: str, starting: str = "earliest"
) -> DataFrame:
    """``raw.<source>`` as a stream; only committed records (``read_committed``): an aborted
    transaction's records never reach any layer. ``starting``: where a new checkpoint starts
    (Spark ignores it once the checkpoint has offsets). A short client timeout bounds each offset
    look-up: after a broker is lost, the next attempt asks the new leader (``streaming.kafka_api_timeout_s``)."""
    api_timeout_ms = int(settings.streaming.kafka_api_timeout_s * 1000)
    return (
        spark.readStream.format("kafka")
        .options(**client_security(settings).spark_options())
        .option("kafka.bootstrap.servers", bootstrap)
        .option("kafka.default.api.timeout.ms", api_timeout_ms)
        .option("kafka.request.timeout.ms", min(api_timeout_ms, 30_000))
        .option("subscribe", settings.topics.raw(source))
        .option("startingOffsets", starting)
        .option("includeHeaders", "true")
        .option("kafka.isolation.level", "read_committed")
        .option("maxOffsetsPerTrigger", settings.streaming.max_offsets_per_trigger)
        .load()
        .withColumnRenamed("timestamp", "kafka_timestamp")
    )


def start_pass(
    spark: SparkSession,
    settings: Settings,
    source: str,
    live: Endpoints,
    *,
    layers: set[str],
    until_idle: bool,
    counts: sv.SilverCounts,
    rules: SourceRules,
    detectors: tuple[Detector, ...] = (),
    detect_each_batch: bool = True,
    hand_off: bool = False,
) -> tuple[StreamingQuery, OnePass]:
    """Start the one-pass query of ``source``; returns it with its batch function (close it after the query)."""
    name = query_name(source)
    location = checkpoint(settings, name)
    clear_interrupted_writes(location)
    starting = "earliest"
    if (reset := pending_reset(live.postgres_url, name)) is not None:
        if has_offsets(location):
            clear_reset(live.postgres_url, name)  # the reset's checkpoint is under way: it took effect
        else:
            starting = reset
            log.info("starting a reset query", extra={"query": name, "starting_offsets": reset})
    process = OnePass(
        spark,
        settings,
        source,
        live,
        layers=layers,
        counts=counts,
        rules=rules,
        detectors=detectors,
        detect_each_batch=detect_each_batch,
        hand_off=hand_off,
        until_idle=until_idle,
    )
    if process.silver:
        process.repair_quality()
    writer = (
        kafka_stream(spark, settings, source, live.kafka_bootstrap, starting)
        .writeStream.queryName(name)
        .foreachBatch(process)
        .option("checkpointLocation", location)
    )
    query = with_trigger(writer, settings, until_idle=until_idle).start()
    process.bind(str(query.id))
    return query, process
