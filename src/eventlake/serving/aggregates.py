"""The gold aggregates in Python, exact and incremental: one :class:`Cell` per (minute, group).

The aggregates are read from the same :data:`~eventlake.streaming.specs.GOLD_SPECS` strings that
Spark evaluates (``count(*)``, ``count(DISTINCT x)``, ``avg``/``sum``/``min``/``max(x)``,
``percentile(x, q)``, ``count_if(x = 'v')``), so the serving path and the lake compute the same
columns from one definition; any other expression is refused when the serving path starts.
A window of several minutes (the sliding table) combines its minutes' cells.
"""

from __future__ import annotations

import re
from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventlake.streaming.specs import GoldSpec

_FORMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("count", re.compile(r"count\(\*\)")),
    ("distinct", re.compile(r"count\(DISTINCT (\w+)\)", re.IGNORECASE)),
    ("percentile", re.compile(r"percentile\((\w+), ([0-9.]+)\)")),
    ("count_if", re.compile(r"count_if\((\w+) = '([^']*)'\)")),
    ("simple", re.compile(r"(avg|sum|min|max)\((\w+)\)")),
)


@dataclass(frozen=True)
class Agg:
    """One parsed aggregate: its kind, the input column, and a parameter (quantile, compared value)."""

    kind: str  # count | distinct | avg | sum | min | max | percentile | count_if
    column: str | None = None
    arg: Any = None


def parse(expr: str) -> Agg:
    """``expr`` (a spec's Spark SQL aggregate) as an :class:`Agg`; ValueError for any other form."""
    for kind, pattern in _FORMS:
        m = pattern.fullmatch(expr.strip())
        if m is None:
            continue
        if kind == "count":
            return Agg("count")
        if kind == "distinct":
            return Agg("distinct", m[1])
        if kind == "percentile":
            return Agg("percentile", m[1], float(m[2]))
        if kind == "count_if":
            return Agg("count_if", m[1], m[2])
        return Agg(m[1], m[2])
    raise ValueError(f"the serving path cannot compute the aggregate {expr!r}")


def parse_spec(spec: GoldSpec) -> tuple[Agg, ...]:
    return tuple(parse(expr) for _, expr, _ in spec.aggs)


class Cell:
    """The events of one (minute, group) of one gold table, folded into what its aggregates need."""

    __slots__ = ("n", "parts")

    def __init__(self, aggs: Sequence[Agg]) -> None:
        self.n = 0
        self.parts: list[Any] = [_empty(a) for a in aggs]

    def add(self, aggs: Sequence[Agg], record: dict[str, Any]) -> None:
        self.n += 1
        for i, a in enumerate(aggs):
            kind = a.kind
            if kind == "count":
                continue
            v = record[a.column] if a.column is not None else None
            if kind == "count_if":
                if v == a.arg:
                    self.parts[i] += 1
                continue
            if v is None:
                continue  # SQL aggregates skip nulls
            part = self.parts[i]
            if kind == "distinct":
                part.add(v)
            elif kind == "percentile":
                insort(part, v)  # kept sorted: a window's p95 is read on every write
            elif kind in ("sum", "avg"):
                part[0] += exact(v)
                part[1] += 1
            elif kind == "min":
                self.parts[i] = v if part is None or v < part else part
            elif kind == "max":
                self.parts[i] = v if part is None or v > part else part


def _empty(a: Agg) -> Any:
    if a.kind == "distinct":
        return set()
    if a.kind == "percentile":
        return []
    if a.kind in ("sum", "avg"):
        return [0, 0]  # exact sum (see ``exact``), count
    if a.kind == "count_if":
        return 0
    return None


def values(aggs: Sequence[Agg], cells: Sequence[Cell]) -> tuple[Any, ...]:
    """The aggregates over the events of ``cells`` (one window's minutes), in the spec's column order."""
    out: list[Any] = []
    for i, a in enumerate(aggs):
        parts = [c.parts[i] for c in cells]
        kind = a.kind
        if kind == "count":
            out.append(sum(c.n for c in cells))
        elif kind == "count_if":
            out.append(sum(parts))
        elif kind == "distinct":
            out.append(len(set().union(*parts)) if len(parts) > 1 else len(parts[0]))
        elif kind == "percentile":
            vals = parts[0] if len(parts) == 1 else sorted(v for p in parts for v in p)
            out.append(percentile(vals, a.arg) if vals else None)
        elif kind in ("sum", "avg"):
            total, n = sum(p[0] for p in parts), sum(p[1] for p in parts)
            out.append(None if n == 0 else total / (_ONE if kind == "sum" else _ONE * n))
        else:
            present = [p for p in parts if p is not None]
            out.append((min if kind == "min" else max)(present) if present else None)
    return tuple(out)


#: 2**1074: every double is an integer multiple of 2**-1074, so sums in these units are exact integers
_ONE = 1 << 1074


def exact(v: float) -> int:
    """``v`` in units of 2**-1074, exactly. Sums of these are exact whatever the order the events came
    in, and ``total / _ONE`` rounds once, correctly: a window recomputed after a restart (partitions
    interleaved differently) gets the very same float, so its row is not rewritten."""
    n, d = float(v).as_integer_ratio()  # d is a power of two
    return n << (1075 - d.bit_length())


def percentile(ordered: Sequence[float], q: float) -> float:
    """Spark's exact ``percentile``: linear interpolation between the closest ranks of sorted values."""
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))
