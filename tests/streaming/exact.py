"""Every layer of one source equals an independent recompute from its raw topic: the check after a
fault (kill -9, an outage) that exactly-once must survive."""

from __future__ import annotations

from collections import Counter

import psycopg

from eventlake.config import Settings
from eventlake.services import endpoints
from tests.streaming import recompute
from tests.streaming.test_pipeline import assert_gold_matches, delta_rows


def assert_layers_exact(settings: Settings, source: str, n: int) -> None:
    """Gold (PostgreSQL and Delta), bronze, silver, quarantine, distinct DLQ records and DQ counts of
    ``source`` (``n`` records produced; a local or an S3 lake) equal what its raw topic implies. The DQ rule
    names checked are those of ``transactions``."""
    live = endpoints(settings)
    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw(source), n)
    assert raw.total == n
    assert_gold_matches(settings, source, recompute.gold(source, raw.records))
    assert len(delta_rows(settings, "bronze", source)) == n, "bronze: each record once"
    assert len(delta_rows(settings, "silver", source)) == len(raw.records), "silver: every valid event once"
    labelled = sum(raw.labels.values()) - raw.labels["duplicate"]
    assert len(delta_rows(settings, "quarantine", source)) == labelled, "quarantine: each bad record once"

    # The DLQ is at-least-once, but its distinct records are exactly the bad ones.
    dlq = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.dlq(source), 0, decode=False)
    assert len({h["eventlake-source-offset"] for h in dlq.headers}) == labelled
    # DQ counts survive the crashes: a replayed batch is counted once, and valid rows are never
    # taken for duplicates of themselves (no spurious `unique` failures).
    with psycopg.connect(live.postgres_url) as conn:
        failed = dict(
            conn.execute(
                "SELECT rule, sum(failed)::int FROM dq_metrics WHERE source = %s GROUP BY rule", (source,)
            ).fetchall()
        )
        stored = conn.execute(
            "SELECT rule, batch_id, checked, failed FROM dq_metrics WHERE source = %s", (source,)
        ).fetchall()
    # The lake's copy (gathered, exported at gold MERGEs and at the end of --until-idle): each row once.
    lake = Counter(
        (r["rule"], r["batch_id"], r["checked"], r["failed"])
        for r in delta_rows(settings, "quality", "metrics")
        if r["source"] == source
    )
    assert lake == Counter(tuple(r) for r in stored), "Delta quality/metrics: every dq_metrics row once"
    assert failed["decode"] == raw.labels["undecodable"] + raw.labels["garbage_body"]
    assert failed["null_required:merchant_category"] == raw.labels["null_required"]
    assert failed["out_of_range:amount"] == raw.labels["out_of_range"]
    assert failed["late"] == raw.labels["late"]
    assert failed["unique:event_id"] == raw.labels["duplicate"]
