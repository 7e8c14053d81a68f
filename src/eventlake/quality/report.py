"""What ``eventlake dq report`` (and the live demo) show: rule pass rates, open alerts, anomalies."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import psycopg

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``15m``/``2h``/``7d`` ago, or an ISO 8601 time (UTC if it has no zone)."""
    now = now or dt.datetime.now(dt.UTC)
    m = _DURATION.match(value.strip())
    if m:
        return now - dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {value!r}: expected a duration like 15m, 2h, 7d or an ISO time") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class RuleRate:
    source: str
    rule: str
    severity: str
    checked: int
    failed: int

    @property
    def pass_rate(self) -> float | None:
        return None if self.checked == 0 else 1 - self.failed / self.checked


def rule_rates(conn: psycopg.Connection[Any], since: dt.datetime) -> list[RuleRate]:
    rows = conn.execute(
        "SELECT source, rule, max(severity), sum(checked), sum(failed) FROM dq_metrics WHERE ts >= %s"
        " GROUP BY source, rule ORDER BY source, sum(failed) DESC, rule",
        (since,),
    ).fetchall()
    return [RuleRate(s, r, sev, int(c), int(f)) for s, r, sev, c, f in rows]


def open_alerts(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """(key, severity, first_seen, last_seen, message, channels) of firing alerts, critical first."""
    return conn.execute(
        "SELECT key, severity, first_seen, last_seen, message, channels FROM dq_alerts WHERE status = 'firing'"
        " ORDER BY severity = 'critical' DESC, first_seen"
    ).fetchall()


def anomalies(conn: psycopg.Connection[Any], since: dt.datetime, limit: int = 20) -> list[tuple[Any, ...]]:
    """(window_start, source, detector, series_key, value, expected, score), strongest first."""
    return conn.execute(
        "SELECT window_start, source, detector, series_key, value, expected, score FROM anomalies"
        " WHERE detected_at >= %s ORDER BY abs(score) DESC LIMIT %s",
        (since, limit),
    ).fetchall()
