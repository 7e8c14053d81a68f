"""The hand-off of ``--until-idle``: the Spark pass writes PostgreSQL gold, the serving path is told
where that leaves it (``serving.hand_off_until_idle``).

Until idle, running the serving path beside the pass decodes every record twice on the same cores
(session 20: the pass alone was 15-17 % faster and 25-27 % cheaper per event). Instead, every pass
batch, *before* it upserts its PostgreSQL gold rows, moves each partition's serving position
(:mod:`~eventlake.serving.offsets`) to the batch's end, and keeps a replay point behind it. The
serving path's next start then *replays* from that point to the batch's end without writing (as after
a crash), writes every window it holds once, and goes live:

* its rows equal the pass's (both exact over every record through the batch's end), so no PostgreSQL
  gold row goes backwards, and none is written before the pass's last hand-off;
* the replay point moves to the previous hand-off's position once that position's newest event
  time (the partition's lateness horizon there) is below the floor of the source's open windows
  (:func:`~eventlake.serving.state.horizon_floor`): every record before it belongs to windows that
  can no longer change, and an event repeating one of them is late, or lands below the floor, where
  nothing is written. Until then (a first hand-off) the replay starts at the partition's beginning.

The cost moves to the serving path's next start: it decodes the range from the replay point before
the live view moves (about 65 k records/s on one core; bench/pipeline.py prints the figure).

Written first, so a crash between the two leaves the serving path replaying *further* than the
pass's rows: its rows are then the exact ones the pass's replayed batch writes again.
"""

from __future__ import annotations

from eventlake import pg
from eventlake.serving.offsets import BEGINNING, Position, read, save


def hand_off(url: str, topic: str, ends: dict[int, int], newest: dict[int, int], floor_ms: int | None) -> int:
    """Move ``topic``'s serving positions to ``ends`` (partition -> next offset) with each partition's
    newest event time (ms) there (``newest``), given the source's open-window floor then
    (``floor_ms``; None: unknown); a position already at or past its end stays. Returns the
    positions moved."""
    with pg.connect(url) as conn, conn.transaction():
        stored = {partition: p for (_, partition), p in read(conn, [topic], lock=True).items()}
        moved = []
        for partition, end in sorted(ends.items()):
            old = stored.get(partition)
            if old is not None and old.next_offset >= end:
                continue  # the serving path (or this batch's first run) is there already
            if old is None:
                replay: tuple[int, int | None] = (BEGINNING, None)
            elif old.newest_ms is not None and floor_ms is not None and old.newest_ms < floor_ms:
                replay = (old.next_offset, old.newest_ms)
            else:
                replay = (old.replay_offset, old.replay_newest_ms)
            moved.append(Position(topic, partition, end, newest.get(partition), *replay))
        save(conn, moved)
    return len(moved)
