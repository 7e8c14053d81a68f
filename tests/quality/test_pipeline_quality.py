"""Data quality in the running pipeline: real Kafka, Spark, Delta, PostgreSQL, a webhook receiver
(for Slack) and aiosmtpd. Faults are injected with labels; every kind must be caught by its rule,
counted exactly, alerted once per key and resolved once the faults stop."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from deltalake import DeltaTable

from eventlake.alerting.dispatcher import Dispatcher
from eventlake.services import Stack, endpoints
from eventlake.streaming.jobs import start_jobs
from eventlake.streaming.silver import SilverCounts
from tests.alerting.receivers import Mailbox, Webhook, free_port, smtp_server
from tests.conftest import MakeSettings
from tests.streaming import recompute
from tests.streaming.test_pipeline import START, pipeline_settings
from tests.streams import send

pytestmark = pytest.mark.e2e
SOURCE = "transactions"
RULES = """
sources:
  transactions:
    - {type: unique}
    - {type: allowed_values, field: currency, values: [USD, EUR, GBP, JPY, INR], severity: warning}
    - {type: volume, window_s: 60, min: 1000000, severity: warning}
"""
CRITICAL = {"decode", "null_required:merchant_category", "out_of_range:amount", "late", "unique:event_id"}


def test_faults_are_detected_counted_alerted_and_resolved(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Path
) -> None:
    rules = tmp_path / "quality.yaml"
    rules.write_text(RULES)
    hook, mailbox, port = Webhook(), Mailbox(), free_port()
    settings = pipeline_settings(
        stack,
        make_settings,
        tmp_path,
        quality={"rules_file": rules},
        slack={"webhook_url": hook.url},
        smtp={"host": "127.0.0.1", "port": port},
        alert={"email_to": "oncall@example.com", "throttle_s": 3600, "resolve_after_s": 0},
        # 10 simulated events/s: three rounds of 1500 span 7.5 minutes, so volume windows close.
        sources={"default_rate": 10.0},
    )
    settings.topics.sources = (SOURCE,)
    live = endpoints(settings)
    n, counts = 1500, {SOURCE: SilverCounts()}
    labels: Counter[str] = Counter()
    dispatcher = Dispatcher(settings, live.postgres_url, live.kafka_bootstrap)
    try:
        with smtp_server(port, mailbox):
            # Rounds: faults, faults, clean, then the clean round again (same seed and clock: the same
            # event ids, so every record of round 4 is a duplicate of one already in silver).
            for i, faults in enumerate((0.05, 0.05, 0.0, 0.0)):
                r = min(i, 2)
                summary = send(settings, live, [SOURCE], n, seed=20 + r, start_ms=START + r * n * 100, faults=faults)
                labels.update(summary.sources[SOURCE].faults)
                start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=True, counts=counts)
                assert dispatcher.drain(30) == 0
    finally:
        hook.close()

    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw(SOURCE), 4 * n)
    assert raw.labels == labels and sum(labels.values()) == 2 * n * 0.05
    with psycopg.connect(live.postgres_url) as conn:
        metrics = conn.execute(
            "SELECT rule, sum(checked), sum(failed), count(*) FROM dq_metrics WHERE source = %s GROUP BY rule",
            (SOURCE,),
        ).fetchall()
        volume = conn.execute("SELECT sum(events), count(*) FILTER (WHERE evaluated) FROM dq_volume").fetchone()
        alerts = conn.execute("SELECT key, status, severity FROM dq_alerts ORDER BY id").fetchall()
    failed = {rule: int(f) for rule, _, f, _ in metrics}
    checked = {rule: int(c) for rule, c, _, _ in metrics}
    # Each fault kind is caught by its rule, counted exactly once.
    assert failed["decode"] == labels["undecodable"] + labels["garbage_body"] and checked["decode"] == 4 * n
    assert failed["null_required:merchant_category"] == labels["null_required"]
    assert failed["out_of_range:amount"] == labels["out_of_range"]
    # Round 4 replays round 3: each record is late (older than round 3's newest minus the lateness)
    # or else a duplicate.
    late4 = failed["late"] - labels["late"]
    assert 0 < late4 < n
    assert failed["unique:event_id"] == labels["duplicate"] + (n - late4) == counts[SOURCE].duplicates
    assert failed["allowed_values:currency"] == 0 and checked["allowed_values:currency"] > 0
    # Volume: every valid event counted in its window; closed windows judged (and failed: min is absurd).
    valid = 4 * n - sum(v for k, v in labels.items() if k != "duplicate") - late4
    assert volume is not None and volume[0] == valid
    assert volume[1] >= 3 and failed["volume"] == checked["volume"] == volume[1]
    # Delta quality/metrics holds the same rows as PostgreSQL.
    lake = settings.lake_uri.removeprefix("file://")
    delta = DeltaTable(f"{lake}/quality/metrics").to_pyarrow_table().to_pylist()
    assert len(delta) == sum(int(c) for *_, c in metrics)
    assert {r["rule"] for r in delta} == set(failed)
    assert sum(r["failed"] for r in delta if r["rule"] == "late") == failed["late"]

    # Alerts: one episode per critical key, fired once and resolved once the faults stopped; round 4's
    # late events and duplicates open second episodes within the throttle interval: recorded, not notified.
    critical = [(k, s) for k, s, sev in alerts if sev == "critical"]
    expected = [(f"dq:{SOURCE}:{r}", "resolved") for r in CRITICAL]
    expected += [(f"dq:{SOURCE}:{r}", "firing") for r in ("late", "unique:event_id")]
    assert sorted(critical) == sorted(expected)
    slack = Counter((b["text"].split()[1], b["text"].split(": ", 1)[1]) for b in hook.bodies)
    for rule in CRITICAL:
        key = f"dq:{SOURCE}:{rule}"
        assert slack[("FIRING", key)] == 1 and slack[("RESOLVED", key)] == 1, (key, slack)
    assert slack[("FIRING", f"dq:{SOURCE}:volume")] == 1 and slack[("RESOLVED", f"dq:{SOURCE}:volume")] == 0
    # Email carries the same notifications as Slack.
    assert Counter(m["Subject"].strip() for _, m in mailbox.messages) == Counter(b["text"] for b in hook.bodies)

    # The report shows the same picture.
    res = subprocess.run(
        [str(Path(sys.executable).parent / "eventlake"), "dq", "report", "--since", "1h"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "EVENTLAKE_HOME": str(settings.home),
            "EVENTLAKE_POSTGRES_URL": live.postgres_url,
            "COLUMNS": "250",
        },
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "rule pass rates" in res.stdout and "open alerts" in res.stdout
    assert f"dq:{SOURCE}:volume" in res.stdout and "unique:event_id" in res.stdout
