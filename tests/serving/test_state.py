"""The serving path's decisions and aggregates, record by record (no services)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from eventlake.serving.aggregates import Agg, parse
from eventlake.serving.engine import _Partition
from eventlake.serving.state import MINUTE_MS, SourceState, at
from eventlake.streaming.specs import SPECS_BY_SOURCE
from tests.streaming.recompute import p95

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
LATENESS_S = 120


def txn(
    event_id: str, ms: int, category: str = "fuel", amount: float = 10.0, status: str = "APPROVED"
) -> dict[str, Any]:
    return {"event_id": event_id, "_ms": ms, "merchant_category": category, "amount": amount, "status": status}


def changed_rows(state: SourceState) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Per gold table: {(window_start, window_end, *keys): aggregates} of the windows changed since last asked."""
    out: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    for spec, batch in state.changed_rows():
        n = len(spec.key_columns) + 1
        out[spec.table] = {tuple(r[:n]): tuple(r[n:]) for r in batch}
    return out


def rows(state: SourceState, table: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return changed_rows(state)[table]


def new_state(max_hold_s: int = 900) -> SourceState:
    return SourceState(SPECS_BY_SOURCE["transactions"], lateness_s=LATENESS_S, max_hold_s=max_hold_s)


def test_every_spec_aggregate_parses_and_others_are_refused() -> None:
    assert parse("count(DISTINCT user_id)") == Agg("distinct", "user_id")
    assert parse("percentile(value, 0.95)") == Agg("percentile", "value", 0.95)
    assert parse("count_if(status = 'DECLINED')") == Agg("count_if", "status", "DECLINED")
    for specs in SPECS_BY_SOURCE.values():
        for spec in specs:
            for _, expr, _ in spec.aggs:
                parse(expr)
    with pytest.raises(ValueError, match="stddev"):
        parse("stddev(value)")


def test_tumbling_and_sliding_rows_are_exact() -> None:
    s = new_state()
    s.add(0, txn("a", T0 + 1_000, amount=5.0))
    s.add(0, txn("b", T0 + 61_000, amount=7.0, status="DECLINED"))
    s.add(1, txn("c", T0 + 62_000, category="travel", amount=1.5))
    minute0, minute1 = at(T0 // MINUTE_MS), at(T0 // MINUTE_MS + 1)
    tumbling = rows(s, "gold_transactions_1m")
    assert tumbling == {
        (minute0, minute1, "fuel"): (1, 5.0, 0),
        (minute1, minute1 + dt.timedelta(minutes=1), "fuel"): (1, 7.0, 1),
        (minute1, minute1 + dt.timedelta(minutes=1), "travel"): (1, 1.5, 0),
    }
    # Each event is in five 5-minute windows; the one starting at minute0 holds both fuel events.
    s.add(0, txn("d", T0 + 2_000, amount=1.0))
    changed = changed_rows(s)
    sliding = changed["gold_transactions_5m_sliding"]
    assert sliding[(minute0, minute0 + dt.timedelta(minutes=5), "fuel")] == (3, 13.0)
    assert len(sliding) == 5, "only the windows the new event is in changed"
    assert changed["gold_transactions_1m"] == {(minute0, minute1, "fuel"): (2, 6.0, 0)}


def test_late_is_per_partition_and_duplicates_count_once() -> None:
    s = new_state()
    s.add(0, txn("a", T0 + 600_000))
    s.add(0, txn("old", T0 + 600_000 - LATENESS_S * 1000 - 1))  # behind partition 0's horizon: late
    s.add(1, txn("other", T0 + 100_000))  # partition 1 has its own horizon: on time
    s.add(1, txn("other", T0 + 100_000))  # the same event again
    assert s.outcomes == {"applied": 2, "late": 1, "duplicate": 1}


def test_windows_are_held_until_the_slowest_partition_passes_them_but_not_beyond_max_hold() -> None:
    s = new_state(max_hold_s=1800)
    s.add(0, txn("a", T0))
    s.add(1, txn("b", T0 + 20 * MINUTE_MS))  # partition 1 far ahead; partition 0 can still change minute 0
    s.advance()
    s.add(0, txn("c", T0 + 1000))
    assert s.outcomes["applied"] == 3
    s.add(1, txn("d", T0 + 40 * MINUTE_MS))  # now more than max_hold_s ahead of partition 0
    s.advance()
    s.add(0, txn("e", T0 + 2000))
    assert s.outcomes["beyond_hold"] == 1
    assert s.held == 2, "ids below the floor are dropped with their windows"


def test_replay_point_is_the_newest_boundary_every_earlier_record_of_which_is_final() -> None:
    p = _Partition("transactions", -2, None, None)
    p.boundaries += [(100, T0), (200, T0 + 5 * MINUTE_MS), (300, T0 + 9 * MINUTE_MS)]
    assert p.replay_point(T0) == (-2, None), "records before offset 100 may reach minute 0"
    assert p.replay_point(T0 + 6 * MINUTE_MS) == (200, T0 + 5 * MINUTE_MS)
    assert p.boundaries[0] == (200, T0 + 5 * MINUTE_MS), "older boundaries are dropped"


def test_percentile_is_sparks_linear_interpolation() -> None:
    s = SourceState(SPECS_BY_SOURCE["iot_sensors"], lateness_s=LATENESS_S, max_hold_s=900)
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
    for i, v in enumerate(values):
        s.add(0, {"event_id": str(i), "_ms": T0 + i, "device_id": "d", "sensor_type": "t", "value": v})
    (row,) = rows(s, "gold_iot_sensors_1m").values()
    assert row == (7, sum(values) / 7, 1.0, 9.0, p95(values))


def test_ids_are_dropped_at_the_lateness_horizon_before_their_windows() -> None:
    s = new_state()
    s.add(0, txn("a", T0))
    s.add(0, txn("b", T0 + 3 * MINUTE_MS))  # minute 0 is now behind the lateness horizon (2 min)
    s.advance()
    assert s.held == 1, "the id of minute 0 is gone"
    assert s.floor < T0 // MINUTE_MS + 1, "its cells are still held (windows up to 5 min can change)"
    s.add(0, txn("a", T0))  # its repeat is late, not counted again
    assert s.outcomes["late"] == 1 and s.outcomes["applied"] == 2


def test_rows_are_bit_identical_whatever_order_the_partitions_interleave_in() -> None:
    """A restart re-reads the partitions interleaved differently; sums must not move by an ulp, or
    every replayed window would be rewritten (and ``updated_at`` lie about when it last changed)."""
    events = [txn(str(i), T0 + i, amount=[0.1, 1e9, 3.3, -7.7e-3][i % 4] * (i + 1)) for i in range(400)]
    forward, backward = new_state(), new_state()
    for e in events:
        forward.add(0, e)
    for e in reversed(events):
        backward.add(0, e)
    a, b = changed_rows(forward), changed_rows(backward)
    assert a == b
    (sums,) = [v[1] for v in a["gold_transactions_1m"].values()]
    assert sums == math.fsum(e["amount"] for e in events), "the sum is the correctly rounded one"
