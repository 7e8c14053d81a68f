"""The live state of one source: lateness horizons per partition, seen event ids, open-window cells.

Decisions are silver's (``streaming.silver``, ``streaming.windows``), made per record in offset order:

* **late**: older than the newest valid event seen before it in its Kafka partition minus
  ``streaming.allowed_lateness_s``;
* **duplicate**: an ``event_id`` already held; ids are held down to the slowest partition's lateness
  horizon (duplicates carry their original's event time, so an older repeat is late anyway);
* every other event is added to one cell per gold table: (minute, group).

**What is held, and for how long.** A window can still change while some partition of the source
can still send events into it, so cells are kept down to a *floor*: the slowest partition's
newest event minus the lateness, the longest window and a minute (the lake path's horizon), but
never more than ``serving.max_hold_s`` behind the newest event of the source, so one partition that
stops sending cannot pin memory. An event whose windows reach below the floor (only possible for a
partition lagging the others by more than ``max_hold_s``) is not applied to the live view; it is
counted in ``eventlake_serving_records_total{outcome="beyond_hold"}``, and the lake's gold has it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eventlake.serving.aggregates import Agg, Cell, parse_spec, values
from eventlake.streaming.specs import GoldSpec

MINUTE_MS = 60_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def at(minute: int) -> dt.datetime:
    return EPOCH + dt.timedelta(minutes=minute)


@dataclass
class _Table:
    spec: GoldSpec
    aggs: tuple[Agg, ...]
    keys: tuple[str, ...]
    #: minute -> group -> cell
    cells: dict[int, dict[tuple[Any, ...], Cell]] = field(default_factory=dict)
    #: (minute, group) of cells changed since the last flush (their windows: :meth:`windows`)
    touched: set[tuple[int, tuple[Any, ...]]] = field(default_factory=set)

    def add(self, minute: int, record: dict[str, Any]) -> None:
        group = tuple(record[k] for k in self.keys)
        by_group = self.cells.get(minute)
        if by_group is None:
            by_group = self.cells[minute] = {}
        cell = by_group.get(group)
        if cell is None:
            cell = by_group[group] = Cell(self.aggs)
        cell.add(self.aggs, record)
        self.touched.add((minute, group))

    def windows(self, minutes: Iterable[tuple[int, tuple[Any, ...]]]) -> set[tuple[int, tuple[Any, ...]]]:
        """The (window start, group) of every window containing one of ``minutes``' (minute, group)."""
        spec = self.spec
        backs = range(0, spec.window_minutes - spec.slide_minutes + 1, spec.slide_minutes)  # start before a minute
        return {(m - back, g) for m, g in minutes for back in backs}

    def row(self, start: int, group: tuple[Any, ...]) -> tuple[Any, ...] | None:
        cells = [c for m in range(start, start + self.spec.window_minutes) if (c := self.cells.get(m, {}).get(group))]
        if not cells:
            return None
        return (at(start), at(start + self.spec.window_minutes), *group, *values(self.aggs, cells))


def keep_ms(specs: Iterable[GoldSpec], lateness_s: int) -> int:
    """How far behind its partition's newest event a cell can still change: the lateness, the longest
    window and a minute (the lake path's horizon)."""
    return lateness_s * 1000 + (max(s.window_minutes for s in specs) + 1) * MINUTE_MS


def horizon_floor(newest: Iterable[int], *, keep: int, max_hold: int) -> int | None:
    """The floor (minute) the partitions' newest event times (ms) allow: the slowest one's horizon,
    but at most ``max_hold`` ms behind the fastest; None without any partition."""
    times = list(newest)
    if not times:
        return None
    return max(min(times) - keep, max(times) - max_hold) // MINUTE_MS


class SourceState:
    """Everything the live view of one source holds (see the module docstring)."""

    def __init__(self, specs: Iterable[GoldSpec], *, lateness_s: int, max_hold_s: int) -> None:
        self.tables = [_Table(s, parse_spec(s), tuple(k for k, _ in s.keys)) for s in specs]
        self.lateness_ms = lateness_s * 1000
        self.keep_ms = keep_ms(self.tables_specs, lateness_s)
        # minutes before an event's own that its windows can start at
        self.reach = max(s.window_minutes for s in self.tables_specs) - 1
        self.max_hold_ms = max_hold_s * 1000
        #: newest valid event time (ms) per Kafka partition
        self.newest: dict[int, int] = {}
        self._ids: dict[str, int] = {}  # event_id -> minute
        self._ids_by_minute: defaultdict[int, list[str]] = defaultdict(list)
        self.floor = -(2**62)  # minute: cells and ids below it are dropped
        #: records per outcome since the last report (applied, late, duplicate, beyond_hold)
        self.outcomes: Counter[str] = Counter()

    @property
    def tables_specs(self) -> list[GoldSpec]:
        return [t.spec for t in self.tables]

    def add(self, partition: int, record: dict[str, Any]) -> None:
        """Judge one valid record (``classify.Decoder`` output) of ``partition`` and apply it."""
        ms: int = record["_ms"]
        newest = self.newest.get(partition)
        if newest is not None and ms < newest - self.lateness_ms:
            self.outcomes["late"] += 1
            return
        if newest is None or ms > newest:
            self.newest[partition] = ms
        minute = ms // MINUTE_MS
        if minute - self.reach < self.floor:
            self.outcomes["beyond_hold"] += 1
            return
        event_id = record["event_id"]
        if event_id in self._ids:
            self.outcomes["duplicate"] += 1
            return
        self._ids[event_id] = minute
        self._ids_by_minute[minute].append(event_id)
        for t in self.tables:
            t.add(minute, record)
        self.outcomes["applied"] += 1

    def next_floor(self) -> int:
        """The floor (minute) the partitions' horizons allow now; never below the current one."""
        floor = horizon_floor(self.newest.values(), keep=self.keep_ms, max_hold=self.max_hold_ms)
        return self.floor if floor is None else max(self.floor, floor)

    def advance(self, floor: int | None = None) -> None:
        """Raise the floor (default: :meth:`next_floor`) and drop what fell below it.

        Ids go sooner than cells: a repeat of an event older than every partition's lateness horizon
        is late wherever it arrives, so ids are kept only down to the slowest horizon (a third of the
        memory of keeping them with their windows)."""
        floor = self.next_floor() if floor is None else floor
        if self.newest:
            slowest, fastest = min(self.newest.values()), max(self.newest.values())
            ids_floor_ms = max(slowest - self.lateness_ms, fastest - self.max_hold_ms)
            for m in [m for m in self._ids_by_minute if (m + 1) * MINUTE_MS <= ids_floor_ms]:
                for event_id in self._ids_by_minute.pop(m):
                    self._ids.pop(event_id, None)
        if floor <= self.floor:
            return
        self.floor = floor
        for m in [m for m in self._ids_by_minute if m < floor]:
            for event_id in self._ids_by_minute.pop(m):
                self._ids.pop(event_id, None)
        for t in self.tables:
            for m in [m for m in t.cells if m < floor]:
                del t.cells[m]
            t.touched = {c for c in t.touched if c[0] >= floor}

    @property
    def floor_ms(self) -> int:
        return self.floor * MINUTE_MS

    def changed_rows(self, *, everything: bool = False) -> list[tuple[GoldSpec, list[tuple[Any, ...]]]]:
        """The exact rows of every window changed since the last call (``everything``: of every window
        held), per gold table, in ``spec.columns`` order; clears the changes."""
        out = []
        for t in self.tables:
            held = ((m, g) for m, groups in t.cells.items() for g in groups)
            windows = t.windows(held if everything else t.touched)
            rows = [
                r
                for start, group in sorted(windows, key=lambda w: w[0])
                if start >= self.floor and (r := t.row(start, group))
            ]
            t.touched = set()
            out.append((t.spec, rows))
        return out

    @property
    def held(self) -> int:
        return len(self._ids)
