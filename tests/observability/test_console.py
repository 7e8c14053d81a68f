"""The demo's live panel, rendered against a real PostgreSQL with gold rows in it."""

from __future__ import annotations

import datetime as dt

import psycopg
from rich.console import Console

from eventlake.observability.console import live_panel
from eventlake.quality.store import ensure_quality_tables
from eventlake.streaming.progress import QueryProgress
from eventlake.streaming.specs import GOLD_SPECS, ensure_gold_table


def render(panel: object) -> str:
    console = Console(record=True, width=200)
    console.print(panel)
    return console.export_text()


def test_live_panel_shows_queries_latency_movers_and_quality(fresh_db: str) -> None:
    ensure_quality_tables(fresh_db)
    for spec in GOLD_SPECS:
        ensure_gold_table(fresh_db, spec)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    with psycopg.connect(fresh_db) as conn:
        for k in range(8):  # eight closed minutes, each row final 2 s after its window ended
            ws = now - dt.timedelta(minutes=10 - k)
            conn.execute(
                "INSERT INTO gold_transactions_1m (window_start, window_end, merchant_category, txn_count,"
                " amount_sum, declined_count, updated_at) VALUES (%s, %s, 'grocery', %s, 10.5, 1, %s)",
                (ws, ws + dt.timedelta(minutes=1), 40 + k, ws + dt.timedelta(minutes=1, seconds=2)),
            )
    progress = {"pipeline_transactions": QueryProgress("pipeline_transactions", 12, 5000, 900.0, 850.0, 0.8)}
    text = render(live_panel(progress, fresh_db, lateness_s=120, footer="Ctrl-C stops"))
    assert "pipeline_transactions" in text and "5,000" in text and "0.80" in text
    row = next(line for line in text.splitlines() if "gold_transactions_1m" in line and " s ago" in line)
    assert "2.0" in row, row  # p50/p99 of updated_at - window_end
    assert "grocery" in text and "txn_count=47" in text  # the row updated last
    assert "rule pass rates" in text and "open alerts" in text and "Ctrl-C stops" in text


def test_live_panel_says_so_when_postgres_is_unreachable() -> None:
    text = render(live_panel({}, "postgresql://nobody@127.0.0.1:1/none", lateness_s=120))
    assert "PostgreSQL unavailable" in text
