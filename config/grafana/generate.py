"""Generate eventlake's Grafana dashboards as code: ``python config/grafana/generate.py``.

Rewrites ``config/grafana/dashboards/*.json`` (standard library only, deterministic output).
``--check`` writes nothing and exits 1 when a committed file differs from what this script
produces. tests/observability/test_config_as_code.py imports :func:`build_dashboards` and checks
that the committed JSON is up to date, that every panel uses a provisioned data source, that
every PromQL expression names only catalogued metrics (or recording rules of
config/prometheus/rules/eventlake.yml) and that every SQL query reads only eventlake tables.

Data source uids match config/grafana/provisioning/datasources/datasources.yml.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARDS_DIR = HERE / "dashboards"

SCHEMA_VERSION = 39
GRID_WIDTH = 24

PROMETHEUS: dict[str, str] = {"type": "prometheus", "uid": "prometheus"}
POSTGRES: dict[str, str] = {"type": "grafana-postgresql-datasource", "uid": "eventlake-postgres"}

Json = dict[str, Any]


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


def prom(expr: str, legend: str = "__auto", *, instant: bool = False, table: bool = False) -> Json:
    """A Prometheus query target (refId is assigned by the panel)."""
    target: Json = {"datasource": dict(PROMETHEUS), "editorMode": "code", "expr": expr, "legendFormat": legend}
    if instant:
        target["instant"] = True
        target["range"] = False
    else:
        target["range"] = True
    if table:
        target["format"] = "table"
    return target


def sql(raw_sql: str, fmt: str = "time_series") -> Json:
    """A PostgreSQL query target in code mode; ``fmt`` is ``time_series`` or ``table``."""
    return {
        "datasource": dict(POSTGRES),
        "editorMode": "code",
        "format": fmt,
        "rawQuery": True,
        "rawSql": " ".join(raw_sql.split()),
    }


def _datasource_of(targets: list[Json]) -> Json:
    kinds = {json.dumps(t["datasource"], sort_keys=True) for t in targets}
    if len(kinds) != 1:
        raise ValueError("a panel's targets must all use the same data source")
    return dict(targets[0]["datasource"])


def _with_ref_ids(targets: list[Json]) -> list[Json]:
    return [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)]


def _thresholds(steps: list[tuple[str, float | None]]) -> Json:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in steps]}


GREEN_ONLY: list[tuple[str, float | None]] = [("green", None)]


def timeseries(
    title: str,
    targets: list[Json],
    *,
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[str, float | None]] | None = None,
    stacked: bool = False,
    bars: bool = False,
) -> Json:
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "line" if thresholds else "off"},
    }
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": _datasource_of(targets),
        "targets": _with_ref_ids(targets),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "palette-classic"},
                "custom": custom,
                "thresholds": _thresholds(thresholds or GREEN_ONLY),
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "calcs": ["lastNotNull", "max"],
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str,
    targets: list[Json],
    *,
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[str, float | None]] | None = None,
    decimals: int | None = None,
) -> Json:
    defaults: Json = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": _thresholds(thresholds or GREEN_ONLY),
        "noValue": "0",
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": _datasource_of(targets),
        "targets": _with_ref_ids(targets),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
    }


def table(title: str, targets: list[Json], *, description: str = "") -> Json:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": _datasource_of(targets),
        "targets": _with_ref_ids(targets),
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True}},
            "overrides": [],
        },
        "options": {
            "cellHeight": "sm",
            "showHeader": True,
            "footer": {"show": False, "reducer": ["sum"], "fields": ""},
        },
    }


class Grid:
    """Lays panels out left to right on Grafana's 24-column grid; assigns unique ids."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._row_height = 0

    def add(self, panel: Json, w: int, h: int) -> None:
        if self._x + w > GRID_WIDTH:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0
        self.panels.append(
            {"id": len(self.panels) + 1, "gridPos": {"h": h, "w": w, "x": self._x, "y": self._y}, **panel}
        )
        self._x += w
        self._row_height = max(self._row_height, h)

    def row(self, panels: list[Json], h: int = 8) -> None:
        """One full-width row of equally wide panels."""
        w = GRID_WIDTH // len(panels)
        if self._x:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0
        for panel in panels:
            self.add(panel, w, h)


def prometheus_variable(name: str, label: str, metric: str) -> Json:
    definition = f"label_values({metric}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": dict(PROMETHEUS),
        "definition": definition,
        "query": {"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "regex": "",
        "sort": 1,
        "hide": 0,
        "options": [],
        "skipUrlSync": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    grid: Grid,
    *,
    variables: list[Json] | None = None,
    time_from: str = "now-1h",
) -> Json:
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["eventlake"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "timezone": "browser",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {"refresh_intervals": ["10s", "30s", "1m", "5m", "15m"]},
        "refresh": "10s",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "eventlake dashboards",
                "type": "dashboards",
                "tags": ["eventlake"],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "templating": {"list": variables or []},
        "panels": grid.panels,
    }


# --------------------------------------------------------------------------------------------
# dashboards
# --------------------------------------------------------------------------------------------

LAG_STEPS: list[tuple[str, float | None]] = [("green", None), ("yellow", 1000), ("red", 10000)]
BATCH_STEPS: list[tuple[str, float | None]] = [("green", None), ("yellow", 20), ("red", 30)]
DQ_STEPS: list[tuple[str, float | None]] = [("green", None), ("yellow", 0.05), ("red", 0.2)]
ANY_RED: list[tuple[str, float | None]] = [("green", None), ("red", 1)]


def pipeline_overview() -> Json:
    g = Grid()
    g.row(
        [
            stat("Records produced / s", [prom("sum(eventlake:records_produced:rate5m)")], unit="cps", decimals=1),
            stat(
                "Bronze rows read / s",
                [prom('sum(eventlake:stream_input_rows:rate5m{query=~"pipeline_.*"})')],
                unit="cps",
                decimals=1,
            ),
            stat("Consumer lag (records)", [prom("sum(eventlake:consumer_lag:sum)")], thresholds=LAG_STEPS),
            stat(
                "Slowest query: p95 batch duration",
                [prom("max(eventlake:stream_batch_duration_seconds:p95_5m)")],
                unit="s",
                thresholds=BATCH_STEPS,
                description="SLO: p95 micro-batch duration <= 30 s (alert EventlakeBatchDurationOverSLO).",
            ),
            stat(
                "Worst source: DQ failure ratio",
                [prom("max(eventlake:dq_failure_ratio:rate5m)")],
                unit="percentunit",
                thresholds=DQ_STEPS,
            ),
            stat(
                "Open critical DQ alerts",
                [prom('sum(eventlake_dq_open_alerts{severity="critical"})')],
                thresholds=ANY_RED,
            ),
        ],
        h=4,
    )
    g.row(
        [
            timeseries(
                "Records produced / s by source", [prom("eventlake:records_produced:rate5m", "{{source}}")], unit="cps"
            ),
            timeseries(
                "Rows read / s by streaming query",
                [prom("eventlake:stream_input_rows:rate5m", "{{query}}")],
                unit="cps",
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Consumer lag by query and topic",
                [prom("eventlake:consumer_lag:sum", "{{query}} / {{topic}}")],
                thresholds=LAG_STEPS[:2],
                description="Latest Kafka offset minus the query's checkpointed offset, summed over partitions.",
            ),
            timeseries(
                "Rows written / s by sink",
                [prom("eventlake:sink_rows_written:rate5m", "{{sink}} / {{table}}")],
                unit="cps",
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Produce errors / s by source",
                [prom("eventlake:produce_errors:rate5m", "{{source}}")],
                unit="cps",
                description="Records Kafka did not acknowledge (alert EventlakeProduceErrors).",
            ),
            timeseries(
                "Produce latency p95 by source",
                [prom("eventlake:produce_latency_seconds:p95_5m", "{{source}}")],
                unit="s",
            ),
            timeseries(
                "Schema Registry requests / s by status",
                [prom("sum by (status) (rate(eventlake_registry_requests_total[$__rate_interval]))", "{{status}}")],
                unit="reqps",
            ),
            timeseries(
                "Schema Registry latency p95 by endpoint",
                [
                    prom(
                        "histogram_quantile(0.95, sum by (endpoint, le) "
                        "(rate(eventlake_registry_request_duration_seconds_bucket[$__rate_interval])))",
                        "{{endpoint}}",
                    )
                ],
                unit="s",
            ),
        ]
    )
    g.row(
        [
            table(
                "Firing DQ alerts",
                [
                    sql(
                        """
                        SELECT severity, key, message, first_seen, last_seen,
                               array_to_string(channels, ', ') AS channels
                        FROM dq_alerts WHERE status = 'firing'
                        ORDER BY severity = 'critical' DESC, last_seen DESC
                        """,
                        "table",
                    )
                ],
            )
        ],
        h=7,
    )
    return dashboard(
        "eventlake-pipeline",
        "eventlake / Pipeline overview",
        "Producers -> Kafka -> Spark streaming -> sinks, at a glance.",
        g,
    )


def source_kpis() -> Json:
    g = Grid()
    g.row(
        [
            stat(
                "User events",
                [
                    sql(
                        "SELECT sum(events) AS events FROM gold_user_activity_1m WHERE $__timeFilter(window_start)",
                        "table",
                    )
                ],
            ),
            stat(
                "Sensor readings",
                [
                    sql(
                        "SELECT sum(readings) AS readings FROM gold_iot_sensors_1m WHERE $__timeFilter(window_start)",
                        "table",
                    )
                ],
            ),
            stat(
                "Transaction amount",
                [
                    sql(
                        "SELECT sum(amount_sum) AS amount FROM gold_transactions_1m WHERE $__timeFilter(window_start)",
                        "table",
                    )
                ],
                decimals=2,
            ),
            stat(
                "Decline rate",
                [
                    sql(
                        """
                        SELECT sum(declined_count)::float8 / NULLIF(sum(txn_count), 0) AS decline_rate
                        FROM gold_transactions_1m WHERE $__timeFilter(window_start)
                        """,
                        "table",
                    )
                ],
                unit="percentunit",
                thresholds=[("green", None), ("yellow", 0.05), ("red", 0.15)],
            ),
        ],
        h=4,
    )
    g.row(
        [
            timeseries(
                "User events / min by event type",
                [
                    sql(
                        """
                        SELECT window_start AS "time", event_type AS metric, sum(events) AS value
                        FROM gold_user_activity_1m WHERE $__timeFilter(window_start)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
                stacked=True,
                bars=True,
            ),
            timeseries(
                "Unique users / min by event type",
                [
                    sql(
                        """
                        SELECT window_start AS "time", event_type AS metric, sum(unique_users) AS value
                        FROM gold_user_activity_1m WHERE $__timeFilter(window_start)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "IoT average value by sensor type",
                [
                    sql(
                        """
                        SELECT window_start AS "time", sensor_type AS metric,
                               sum(avg_value * readings) / NULLIF(sum(readings), 0) AS value
                        FROM gold_iot_sensors_1m WHERE $__timeFilter(window_start)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
                description="Per-minute average over all devices, weighted by readings.",
            ),
            timeseries(
                "IoT highest device p95 by sensor type",
                [
                    sql(
                        """
                        SELECT window_start AS "time", sensor_type AS metric, max(p95_value) AS value
                        FROM gold_iot_sensors_1m WHERE $__timeFilter(window_start)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
            ),
            table(
                "Devices with the most readings",
                [
                    sql(
                        """
                        SELECT device_id, sensor_type, sum(readings) AS readings,
                               round((sum(avg_value * readings) / NULLIF(sum(readings), 0))::numeric, 2) AS avg_value,
                               min(min_value) AS min_value, max(max_value) AS max_value
                        FROM gold_iot_sensors_1m WHERE $__timeFilter(window_start)
                        GROUP BY device_id, sensor_type ORDER BY readings DESC LIMIT 20
                        """,
                        "table",
                    )
                ],
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Transaction amount / min by merchant category",
                [
                    sql(
                        """
                        SELECT window_start AS "time", merchant_category AS metric, sum(amount_sum) AS value
                        FROM gold_transactions_1m WHERE $__timeFilter(window_start)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
                stacked=True,
            ),
            timeseries(
                "Transactions / min by merchant category",
                [
                    sql(
                        """
                        SELECT window_start AS "time", merchant_category AS metric, sum(txn_count) AS value
                        FROM gold_transactions_1m WHERE $__timeFilter(window_start)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
                stacked=True,
                bars=True,
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Decline rate by merchant category",
                [
                    sql(
                        """
                        SELECT window_start AS "time", merchant_category AS metric,
                               sum(declined_count)::float8 / NULLIF(sum(txn_count), 0) AS value
                        FROM gold_transactions_1m WHERE $__timeFilter(window_start)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
                unit="percentunit",
            ),
            timeseries(
                "Transaction amount, sliding 5-minute windows",
                [
                    sql(
                        """
                        SELECT window_start AS "time", merchant_category AS metric, sum(amount_sum) AS value
                        FROM gold_transactions_5m_sliding WHERE $__timeFilter(window_start)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
                description="Amount over the 5 minutes starting at each window start (gold_transactions_5m_sliding).",
            ),
        ]
    )
    return dashboard(
        "eventlake-source-kpis",
        "eventlake / Source KPIs",
        "Business KPIs of the three sources, from the gold tables in PostgreSQL.",
        g,
        time_from="now-3h",
    )


EVENT_TIME_LAG = (
    "now - newest event time the query has seen (metric eventlake_stream_watermark_delay_seconds);"
    " large for a replayed historical stream."
)


def streaming_health() -> Json:
    q = '{query=~"$query"}'
    g = Grid()
    g.row(
        [
            stat(
                "Queries reporting progress",
                [prom(f"count(eventlake_stream_last_progress_timestamp_seconds{q})")],
            ),
            stat(
                "Longest time since progress",
                [prom(f"max(time() - eventlake_stream_last_progress_timestamp_seconds{q})")],
                unit="s",
                thresholds=[("green", None), ("yellow", 60), ("red", 300)],
            ),
            stat(
                "Max event-time lag",
                [prom(f"max(eventlake_stream_watermark_delay_seconds{q})")],
                unit="s",
                decimals=0,
                description=EVENT_TIME_LAG,
            ),
            stat("Total consumer lag", [prom(f"sum(eventlake:consumer_lag:sum{q})")], thresholds=LAG_STEPS),
        ],
        h=4,
    )
    g.row(
        [
            timeseries("Input rows / s", [prom(f"eventlake:stream_input_rows:rate5m{q}", "{{query}}")], unit="cps"),
            timeseries(
                "Processed rows / s (last micro-batch)",
                [prom(f"eventlake_stream_processed_rows_per_second{q}", "{{query}}")],
                unit="cps",
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Micro-batch duration p95",
                [prom(f"eventlake:stream_batch_duration_seconds:p95_5m{q}", "{{query}}")],
                unit="s",
                thresholds=[("green", None), ("red", 30)],
                description="SLO line at 30 s (alert EventlakeBatchDurationOverSLO).",
            ),
            timeseries(
                "Micro-batches / min",
                [
                    prom(
                        "sum by (query) "
                        f"(rate(eventlake_stream_batch_duration_seconds_count{q}[$__rate_interval])) * 60",
                        "{{query}}",
                    )
                ],
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Event-time lag",
                [prom(f"eventlake_stream_watermark_delay_seconds{q}", "{{query}}")],
                unit="s",
                description=EVENT_TIME_LAG,
            ),
            timeseries("State store rows", [prom(f"eventlake_stream_state_rows{q}", "{{query}}")]),
            timeseries(
                "Time since last progress",
                [prom(f"time() - eventlake_stream_last_progress_timestamp_seconds{q}", "{{query}}")],
                unit="s",
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Consumer lag by partition",
                [prom(f"eventlake_kafka_consumer_lag{q}", "{{query}} {{topic}}[{{partition}}]")],
                thresholds=LAG_STEPS[:2],
            ),
            table(
                "Consumer lag now",
                [prom(f"sort_desc(eventlake:consumer_lag:sum{q})", instant=True, table=True)],
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Sink commit p95", [prom("eventlake:sink_commit_seconds:p95_5m", "{{sink}} / {{table}}")], unit="s"
            ),
            timeseries(
                "Sink rows written / s",
                [prom("eventlake:sink_rows_written:rate5m", "{{sink}} / {{table}}")],
                unit="cps",
            ),
        ]
    )
    return dashboard(
        "eventlake-streaming",
        "eventlake / Streaming health",
        "Spark Structured Streaming, one query per source (pipeline_<source>): throughput, batch duration, lag, state,"
        " sinks.",
        g,
        variables=[prometheus_variable("query", "Query", "eventlake_stream_input_rows_total")],
    )


def data_quality() -> Json:
    g = Grid()
    g.row(
        [
            stat(
                "Open critical alerts",
                [prom('sum(eventlake_dq_open_alerts{severity="critical"})')],
                thresholds=ANY_RED,
            ),
            stat(
                "Open warning alerts",
                [prom('sum(eventlake_dq_open_alerts{severity="warning"})')],
                thresholds=[("green", None), ("yellow", 1)],
            ),
            stat(
                "Worst source: failure ratio",
                [prom("max(eventlake:dq_failure_ratio:rate5m)")],
                unit="percentunit",
                thresholds=DQ_STEPS,
            ),
            stat("Anomalies in range", [prom("sum(increase(eventlake_anomalies_total[$__range]))")], decimals=0),
        ],
        h=4,
    )
    g.row(
        [
            timeseries(
                "Failure ratio by source",
                [prom("eventlake:dq_failure_ratio:rate5m", "{{source}}")],
                unit="percentunit",
                thresholds=DQ_STEPS,
                description="Failed / checked rows over 5 minutes; alerts at 5% (warning) and 20% (critical).",
            ),
            timeseries(
                "Failed rows / s by source and rule",
                [
                    prom(
                        "sum by (source, rule) (rate(eventlake_dq_failed_rows_total[$__rate_interval]))",
                        "{{source}} / {{rule}}",
                    )
                ],
                unit="cps",
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Checked rows / s by source",
                [prom("sum by (source) (rate(eventlake_dq_checked_rows_total[$__rate_interval]))", "{{source}}")],
                unit="cps",
            ),
            timeseries(
                "Anomalies / min by source and detector",
                [
                    prom(
                        "sum by (source, detector) (rate(eventlake_anomalies_total[$__rate_interval])) * 60",
                        "{{source}} / {{detector}}",
                    )
                ],
            ),
            timeseries(
                "Alert notifications / min by channel and status",
                [
                    prom(
                        "sum by (channel, status) (rate(eventlake_alert_notifications_total[$__rate_interval])) * 60",
                        "{{channel}} / {{status}}",
                    )
                ],
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Failure ratio per minute (dq_metrics)",
                [
                    sql(
                        """
                        SELECT $__timeGroupAlias(ts, '1m'), source AS metric,
                               sum(failed)::float8 / NULLIF(sum(checked), 0) AS value
                        FROM dq_metrics WHERE $__timeFilter(ts)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
                unit="percentunit",
                thresholds=DQ_STEPS,
            ),
            table(
                "Failed checks (dq_metrics)",
                [
                    sql(
                        """
                        SELECT ts AS "time", source, rule, severity, batch_id, checked, failed,
                               round(100.0 * failed / NULLIF(checked, 0), 2) AS failed_pct
                        FROM dq_metrics WHERE $__timeFilter(ts) AND failed > 0
                        ORDER BY ts DESC LIMIT 200
                        """,
                        "table",
                    )
                ],
            ),
        ]
    )
    g.row(
        [
            table(
                "Firing alerts (dq_alerts)",
                [
                    sql(
                        """
                        SELECT severity, key, message, first_seen, last_seen,
                               array_to_string(channels, ', ') AS channels
                        FROM dq_alerts WHERE status = 'firing'
                        ORDER BY severity = 'critical' DESC, last_seen DESC
                        """,
                        "table",
                    )
                ],
            ),
            table(
                "Alert history (dq_alerts)",
                [
                    sql(
                        """
                        SELECT last_seen, first_seen, severity, status, key, message
                        FROM dq_alerts WHERE $__timeFilter(last_seen)
                        ORDER BY last_seen DESC LIMIT 200
                        """,
                        "table",
                    )
                ],
            ),
        ]
    )
    g.row(
        [
            timeseries(
                "Anomalies / min by detector (anomalies)",
                [
                    sql(
                        """
                        SELECT $__timeGroupAlias(window_start, '1m'), detector AS metric, count(*) AS value
                        FROM anomalies WHERE $__timeFilter(window_start)
                        GROUP BY 1, 2 ORDER BY 1
                        """
                    )
                ],
                bars=True,
                stacked=True,
            ),
            table(
                "Recent anomalies",
                [
                    sql(
                        """
                        SELECT detected_at, window_start, source, series_key, detector, value, expected,
                               round(score::numeric, 2) AS score
                        FROM anomalies WHERE $__timeFilter(window_start)
                        ORDER BY detected_at DESC LIMIT 200
                        """,
                        "table",
                    )
                ],
            ),
        ]
    )
    return dashboard(
        "eventlake-data-quality",
        "eventlake / Data quality",
        "DQ rule failures, alerts and anomalies: live counters from Prometheus, history from PostgreSQL.",
        g,
    )


def build_dashboards() -> dict[str, Json]:
    """File name -> dashboard model, for every dashboard eventlake provisions."""
    return {
        "pipeline-overview.json": pipeline_overview(),
        "source-kpis.json": source_kpis(),
        "streaming-health.json": streaming_health(),
        "data-quality.json": data_quality(),
    }


def render(model: Json) -> str:
    """The exact text written to disk (stable key order, trailing newline)."""
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR, help="output directory")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, model in build_dashboards().items():
        path = args.out / name
        text = render(model)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if args.check else "written"
    for path in stale:
        sys.stdout.write(f"{verb}: {path}\n")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
