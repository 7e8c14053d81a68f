"""What the terminal shows: the demo's one refreshing panel, and the data-quality tables.

``live_panel`` is redrawn in place by ``eventlake run`` every couple of seconds (rich ``Live``):
per-query rates and batch durations, window end -> PostgreSQL latency, the gold rows that moved
last, rule pass rates, open alerts. Engine logs go to files under ``EVENTLAKE_HOME/logs``, so
nothing else writes to the terminal meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

import psycopg
from psycopg import sql
from rich.console import Group
from rich.table import Table
from rich.text import Text

from eventlake import pg
from eventlake.observability.dashboard import end_to_end
from eventlake.quality.report import anomalies, open_alerts, rule_rates
from eventlake.streaming.specs import GOLD_SPECS


class Progress(Protocol):
    """The figures of one streaming query (``eventlake.streaming.progress.QueryProgress``)."""

    batches: int
    input_rows_total: int
    processed_rows_per_s: float
    batch_duration_s: float


def queries_table(progress: Mapping[str, Progress]) -> Table:
    table = Table(title="streaming queries (one pass per source)")
    for col in ("query", "batches", "input rows", "rows/s", "last batch s"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for name, p in sorted(progress.items()):
        table.add_row(
            name,
            f"{p.batches:,}",
            f"{p.input_rows_total:,}",
            f"{p.processed_rows_per_s:,.0f}",
            f"{p.batch_duration_s:.2f}",
        )
    return table


def latency_table(conn: psycopg.Connection[Any], lateness_s: float) -> Table:
    table = Table(title="window end -> final row in PostgreSQL (last closed windows)")
    for col in ("gold table", "p50 s", "p99 s", "rows", "updated"):
        table.add_column(col, justify="left" if col == "gold table" else "right")
    for t in end_to_end(conn, lateness_s, minutes=30)["tables"]:

        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        ago = t["updated_ago_s"]
        table.add_row(
            t["table"], fmt(t["p50_s"]), fmt(t["p99_s"]), str(t["rows"]), "-" if ago is None else f"{ago:.0f} s ago"
        )
    return table


def movers_table(conn: psycopg.Connection[Any], per_table: int = 3) -> Table:
    """The gold rows updated last, per contract table: what the stream is changing right now."""
    table = Table(title="gold rows updated last")
    for col in ("table", "window", "group", "values", "updated"):
        table.add_column(col)
    for spec in GOLD_SPECS:
        keys = [k for k, _ in spec.keys]
        aggs = [a for a, _, _ in spec.aggs][:3]
        rows = conn.execute(
            sql.SQL("SELECT window_start, {k}, {a}, updated_at FROM {t} ORDER BY updated_at DESC LIMIT %s").format(
                k=sql.SQL(", ").join(map(sql.Identifier, keys)),
                a=sql.SQL(", ").join(map(sql.Identifier, aggs)),
                t=sql.Identifier(spec.table),
            ),
            (per_table,),
        ).fetchall()
        for r in rows:
            group = "/".join(str(v) for v in r[1 : 1 + len(keys)])
            values = ", ".join(f"{a}={_num(v)}" for a, v in zip(aggs, r[1 + len(keys) : -1], strict=True))
            table.add_row(spec.table, f"{r[0]:%H:%M}", group, values, f"{r[-1]:%H:%M:%S}")
    return table


def _num(v: Any) -> str:
    return f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def dq_tables(conn: psycopg.Connection[Any], start: dt.datetime, *, with_anomalies: bool = True) -> Group:
    rates = Table(title=f"rule pass rates since {start:%Y-%m-%d %H:%M:%S} UTC")
    for col in ("source", "rule", "severity", "checked", "failed", "pass rate"):
        rates.add_column(col, justify="right" if col in ("checked", "failed", "pass rate") else "left")
    for r in rule_rates(conn, start):
        rate = "-" if r.pass_rate is None else f"{r.pass_rate:.2%}"
        style = "red" if r.failed and r.severity == "critical" else ("yellow" if r.failed else "green")
        rates.add_row(r.source, r.rule, r.severity, f"{r.checked:,}", f"{r.failed:,}", f"[{style}]{rate}[/]")
    alerts = Table(title="open alerts")
    for col in ("key", "severity", "first seen", "last seen", "message", "delivered to"):
        alerts.add_column(col)
    for key, sev, first, last, message, channels in open_alerts(conn):
        alerts.add_row(key, sev, f"{first:%H:%M:%S}", f"{last:%H:%M:%S}", message, ", ".join(channels) or "-")
    if not with_anomalies:
        return Group(rates, alerts)
    found = Table(title="anomalies (strongest first)")
    for col in ("window", "source", "detector", "series", "value", "expected", "score"):
        found.add_column(col)
    for ws, source, detector, key, value, expected, score in anomalies(conn, start):
        found.add_row(f"{ws:%Y-%m-%d %H:%M}", source, detector, key, f"{value:.3g}", f"{expected:.3g}", f"{score:+.1f}")
    return Group(rates, alerts, found)


def live_panel(progress: Mapping[str, Progress], postgres_url: str, lateness_s: float, footer: str = "") -> Group:
    """The demo's whole screen; PostgreSQL being unreachable shows as one line, not a traceback."""
    parts: list[Any] = [queries_table(progress)]
    try:
        with pg.connect(postgres_url, connect_timeout=3) as conn:
            parts += [
                latency_table(conn, lateness_s),
                movers_table(conn),
                dq_tables(conn, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), with_anomalies=False),
            ]
    except psycopg.Error as ex:
        parts.append(Text(f"PostgreSQL unavailable: {type(ex).__name__}", style="red"))
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)
