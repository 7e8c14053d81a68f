"""The hand-off of ``--until-idle`` (``eventlake.serving.handoff``) on a real broker, registry,
PostgreSQL and Spark: the pass writes PostgreSQL gold and moves the serving path's positions; the
serving path's next start takes over without a row going backwards, and exactly."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from eventlake.services import Stack, endpoints
from eventlake.serving.handoff import hand_off
from eventlake.serving.offsets import BEGINNING, Position, load
from eventlake.serving.runner import run_until_idle
from eventlake.streaming.jobs import JOBS, hands_off, start_jobs
from tests.conftest import MakeSettings
from tests.serving.test_serving import _prepare
from tests.streaming import recompute
from tests.streaming.test_pipeline import START, assert_gold_matches, pipeline_settings
from tests.streams import send

pytestmark = pytest.mark.e2e
SOURCE = "transactions"
LATER_MS = 600_000
N = 6000
#: the gold tables of ``SOURCE`` watched for rows going backwards: (table, its key columns, a count)
WATCHED = (
    ("gold_transactions_1m", "window_start, merchant_category", "txn_count"),
    ("gold_transactions_5m_sliding", "window_start, merchant_category", "txn_count"),
)


def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "handoff-test"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def _gold(url: str) -> dict[str, set[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {t: set(conn.execute(f"SELECT {keys}, {count} FROM {t}").fetchall()) for t, keys, count in WATCHED}


def _audit_regressions(url: str) -> None:
    """Log every update of a watched table that lowers its count into ``regressions`` (a trigger:
    every write is seen, not a sample)."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE regressions (tbl text, window_start timestamptz, old bigint, new bigint)")
        conn.execute(
            "CREATE FUNCTION lowered() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.txn_count < OLD.txn_count THEN"
            " INSERT INTO regressions VALUES (TG_TABLE_NAME, NEW.window_start, OLD.txn_count, NEW.txn_count);"
            " END IF; RETURN NEW; END $$"
        )
        for table, _, _ in WATCHED:
            conn.execute(f"CREATE TRIGGER lowered BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION lowered()")


def test_until_idle_hands_off_and_the_serving_path_takes_over_exactly(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any
) -> None:
    # Flushes every 10 ms: without the hand-off, the serving path's first write of the first 6 000
    # records would hold some windows partly (it consumes up to 5 000 records between two writes).
    settings = pipeline_settings(
        stack, make_settings, tmp_path, streaming={"max_offsets_per_trigger": 3000}, serving={"flush_ms": 10}
    )
    settings.topics.sources = (SOURCE,)
    live = endpoints(settings)
    topic = settings.topics.raw(SOURCE)
    assert send(settings, live, [SOURCE], N, seed=61, start_ms=START, faults=0.05).delivered == N

    start_jobs(spark, settings, live, list(JOBS), until_idle=True)  # a fresh lake: the passes hand off
    # No serving process ran: the pass wrote PostgreSQL gold, exact, and every serving position.
    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, topic, N)
    assert_gold_matches(settings, SOURCE, recompute.gold(SOURCE, raw.records), delta=False)
    positions = load(live.postgres_url, [topic])
    ends = {p: end for p, end in _ends(live.kafka_bootstrap, topic).items() if end > 0}
    assert {p: pos.next_offset for (_, p), pos in positions.items()} == ends
    assert all(pos.replay_offset == BEGINNING for pos in positions.values()), "a minute of events: nothing final yet"
    assert hands_off(settings, live, list(JOBS), until_idle=True), "the serving path is behind no pass"
    handed = _gold(live.postgres_url)

    # Later records, then the serving path's next start: it replays to the hand-off without writing,
    # writes every held window once (the pass's values), then applies the new records.
    assert send(settings, live, [SOURCE], 1500, seed=62, start_ms=START + LATER_MS, faults=0.05).delivered == 1500
    _audit_regressions(live.postgres_url)
    run_until_idle(settings, live)
    with psycopg.connect(live.postgres_url) as conn:
        lowered = conn.execute("SELECT * FROM regressions").fetchall()
    assert not lowered, lowered[:5]
    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, topic, N + 1500)
    assert raw.total == N + 1500
    assert_gold_matches(settings, SOURCE, recompute.gold(SOURCE, raw.records), delta=False)
    sliding = recompute.sliding_transactions(raw.records)
    assert_gold_matches(settings, SOURCE, sliding, table="gold_transactions_5m_sliding", delta=False)
    later = _gold(live.postgres_url)
    for table, rows in handed.items():  # the first minute of events is ten minutes before the new ones
        assert rows <= later[table], f"{table}: a handed-off row changed"

    # A serving path behind a pass's checkpoint (it never read what the pass read): the next run
    # runs it beside the passes, which makes PostgreSQL gold complete; so does the setting.
    assert hands_off(settings, live, list(JOBS), until_idle=True)
    settings.serving.hand_off_until_idle = False
    assert not hands_off(settings, live, list(JOBS), until_idle=True)
    settings.serving.hand_off_until_idle = True
    with psycopg.connect(live.postgres_url) as conn:
        conn.execute("UPDATE eventlake_serving_offsets SET next_offset = 1")
    assert not hands_off(settings, live, list(JOBS), until_idle=True)
    assert not hands_off(settings, live, list(JOBS), until_idle=False), "live runs keep the serving path"


def test_a_hand_off_moves_positions_forward_and_its_replay_point_once_final(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any
) -> None:
    """Positions only move forward (a replayed batch, or a serving path already further, changes
    nothing); the replay point moves to the previous hand-off once that one's newest event time is
    below the open windows' floor, and stays at the partition's beginning until then."""
    _, live = _prepare(stack, make_settings, tmp_path, (SOURCE,))
    url, topic = live.postgres_url, "raw.t"
    assert hand_off(url, topic, {0: 100, 1: 50}, {0: 10_000, 1: 9_000}, floor_ms=None) == 2
    assert hand_off(url, topic, {0: 100}, {0: 10_000}, floor_ms=None) == 0, "the same batch again"
    # Floor below the stored newest: the replay point stays.
    assert hand_off(url, topic, {0: 200, 1: 80}, {0: 20_000, 1: 19_000}, floor_ms=9_500) == 2
    got = load(url, [topic])
    assert got[(topic, 0)] == Position(topic, 0, 200, 20_000, BEGINNING, None)
    assert got[(topic, 1)] == Position(topic, 1, 80, 19_000, 50, 9_000), "9 000 < 9 500: final before offset 50"
    # Floor past the previous hand-off's newest: the replay point moves there.
    assert hand_off(url, topic, {0: 300}, {0: 30_000}, floor_ms=25_000) == 1
    assert load(url, [topic])[(topic, 0)] == Position(topic, 0, 300, 30_000, 200, 20_000)
    # The serving path further than a (late) hand-off: its position stays.
    assert hand_off(url, topic, {1: 70}, {1: 18_000}, floor_ms=25_000) == 0
    assert load(url, [topic])[(topic, 1)].next_offset == 80
