"""Every Prometheus metric eventlake exports, in one place (the README table is checked against it).

Metrics live in the process's default registry; each long-running process serves them on
``/metrics`` (:mod:`eventlake.observability.server`). The registry service keeps its own
``eventlake_registry_*`` families (``eventlake.registry.app``); they are listed here too.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
#: finer below 5 s, where a one-pass micro-batch lands: the dashboard's p95 interpolates within these
STREAM_BATCH_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 20, 30, 60, 120, 300)

# producers
RECORDS_PRODUCED = Counter("eventlake_records_produced", "Records acknowledged by Kafka, per source", ["source"])
PRODUCE_ERRORS = Counter("eventlake_produce_errors", "Records Kafka did not acknowledge, per source", ["source"])
PRODUCE_LATENCY = Histogram(
    "eventlake_produce_latency_seconds",
    "Time from produce() to the broker's acknowledgement",
    ["source"],
    buckets=LATENCY_BUCKETS,
)

# streaming (from the StreamingQueryListener)
STREAM_INPUT_ROWS = Counter("eventlake_stream_input_rows", "Rows read by a streaming query", ["query"])
STREAM_ROWS_PER_S = Gauge(
    "eventlake_stream_processed_rows_per_second", "Rows/s processed in the query's last micro-batch", ["query"]
)
STREAM_BATCH_DURATION = Histogram(
    "eventlake_stream_batch_duration_seconds", "Micro-batch duration", ["query"], buckets=STREAM_BATCH_BUCKETS
)
# Named for history: it is the event-time lag, now minus the newest event time the query has seen
# (not minus the watermark); large for a replayed historical stream.
STREAM_WATERMARK_DELAY = Gauge(
    "eventlake_stream_watermark_delay_seconds",
    "Event-time lag: now minus the newest event time the query has seen (large for a replayed stream)",
    ["query"],
)
STREAM_STATE_ROWS = Gauge("eventlake_stream_state_rows", "Rows held in the query's state store", ["query"])
STREAM_LAST_PROGRESS = Gauge(
    "eventlake_stream_last_progress_timestamp_seconds", "Unix time of the query's last progress event", ["query"]
)
PIPELINE_RESTARTS = Counter(
    "eventlake_pipeline_restarts",
    "Failed streaming queries (or the serving path) restarted by the supervisor",
    ["component"],
)
# eventlake_kafka_consumer_lag is computed at scrape time: eventlake.observability.lag.LagCollector

# sinks
SINK_ROWS = Counter("eventlake_sink_rows_written", "Rows written by a sink", ["sink", "table"])
SINK_COMMIT = Histogram(
    "eventlake_sink_commit_seconds", "Time to write and commit one batch", ["sink", "table"], buckets=BATCH_BUCKETS
)

# data quality and alerting
SERVING_RECORDS = Counter(
    "eventlake_serving_records",
    "Records the serving path read, by outcome (applied, invalid, late, duplicate, beyond_hold)",
    ["source", "outcome"],
)
SERVING_DELAY = Histogram(
    "eventlake_serving_delay_seconds",
    "Kafka timestamp of the newest record a serving-path write includes to the end of that write",
    buckets=LATENCY_BUCKETS,
)
SERVING_FLUSH = Histogram(
    "eventlake_serving_flush_seconds", "One serving-path write: gold rows and Kafka positions", buckets=LATENCY_BUCKETS
)
DQ_CHECKED = Counter("eventlake_dq_checked_rows", "Rows (or windows, batches) a rule checked", ["source", "rule"])
DQ_FAILED = Counter("eventlake_dq_failed_rows", "Rows (or windows, batches) that failed a rule", ["source", "rule"])
DQ_OPEN_ALERTS = Gauge("eventlake_dq_open_alerts", "Alerts currently firing", ["severity"])
ALERT_NOTIFICATIONS = Counter(
    "eventlake_alert_notifications", "Alert deliveries by channel and outcome", ["channel", "status"]
)
ANOMALIES = Counter("eventlake_anomalies", "Anomalies found by a detector", ["source", "detector"])
ALERT_OUTBOX_PENDING = Gauge("eventlake_alert_outbox_pending", "Alert deliveries waiting to be sent (the outbox)")
ALERT_DISPATCHER_ERRORS = Counter(
    "eventlake_alert_dispatcher_errors",
    "Dispatcher polls, or deliveries, that failed in the dispatcher itself (not the channel); it keeps going",
    ["error"],
)
REGISTRY_UNREACHABLE = Counter(
    "eventlake_registry_unreachable",
    "Batches that decoded with cached schemas: the registry did not answer",
    ["subject"],
)

# dashboard
DASHBOARD_SNAPSHOTS = Counter(
    "eventlake_dashboard_snapshots",
    "Dashboard snapshots computed (one PostgreSQL round each, shared by every client of the interval)",
)
DASHBOARD_CLIENTS = Gauge("eventlake_dashboard_clients", "Live-dashboard clients connected (server-sent events)")
DASHBOARD_REJECTED = Counter(
    "eventlake_dashboard_rejected", "Live-dashboard clients refused with 503: dashboard.max_clients were connected"
)

#: (name as scraped, type, labels, meaning): the README's metric table
CATALOGUE: tuple[tuple[str, str, str, str], ...] = (
    ("eventlake_records_produced_total", "counter", "source", "records acknowledged by Kafka"),
    ("eventlake_produce_errors_total", "counter", "source", "records Kafka did not acknowledge"),
    ("eventlake_produce_latency_seconds", "histogram", "source", "produce() to broker acknowledgement"),
    ("eventlake_registry_requests_total", "counter", "endpoint, method, status", "Schema Registry requests"),
    ("eventlake_registry_request_duration_seconds", "histogram", "endpoint", "Schema Registry latency"),
    ("eventlake_stream_input_rows_total", "counter", "query", "rows read by a streaming query"),
    ("eventlake_stream_processed_rows_per_second", "gauge", "query", "rows/s of the last micro-batch"),
    ("eventlake_stream_batch_duration_seconds", "histogram", "query", "micro-batch duration"),
    (
        "eventlake_stream_watermark_delay_seconds",
        "gauge",
        "query",
        "event-time lag: now minus the newest event time seen (large for a replayed stream)",
    ),
    ("eventlake_stream_state_rows", "gauge", "query", "rows in the state store"),
    ("eventlake_stream_last_progress_timestamp_seconds", "gauge", "query", "time of the last progress event"),
    (
        "eventlake_pipeline_restarts_total",
        "counter",
        "component",
        "failed queries (or the serving path) restarted by the supervisor",
    ),
    ("eventlake_kafka_consumer_lag", "gauge", "query, topic, partition", "high watermark minus checkpointed offset"),
    ("eventlake_sink_rows_written_total", "counter", "sink, table", "rows written (delta, postgres, dlq)"),
    ("eventlake_sink_commit_seconds", "histogram", "sink, table", "write + commit time of one batch"),
    (
        "eventlake_serving_records_total",
        "counter",
        "source, outcome",
        "serving path: records applied, invalid, late, duplicate, beyond_hold",
    ),
    ("eventlake_serving_flush_seconds", "histogram", "", "serving path: one write of gold rows + positions"),
    (
        "eventlake_serving_delay_seconds",
        "histogram",
        "",
        "serving path: Kafka timestamp of a write's newest record to the end of the write",
    ),
    ("eventlake_dq_checked_rows_total", "counter", "source, rule", "rows/windows/batches a rule checked"),
    ("eventlake_dq_failed_rows_total", "counter", "source, rule", "rows/windows/batches that failed a rule"),
    ("eventlake_dq_open_alerts", "gauge", "severity", "alerts currently firing"),
    ("eventlake_alert_notifications_total", "counter", "channel, status", "alert deliveries (sent, retry, failed)"),
    ("eventlake_anomalies_total", "counter", "source, detector", "anomalies found"),
    ("eventlake_alert_outbox_pending", "gauge", "", "alert deliveries waiting to be sent"),
    (
        "eventlake_alert_dispatcher_errors_total",
        "counter",
        "error",
        "dispatcher polls or deliveries that failed in the dispatcher itself",
    ),
    ("eventlake_registry_unreachable_total", "counter", "subject", "batches decoded with cached schemas"),
    ("eventlake_dashboard_snapshots_total", "counter", "", "dashboard snapshots computed (shared by all clients)"),
    ("eventlake_dashboard_clients", "gauge", "", "live-dashboard clients connected (SSE)"),
    ("eventlake_dashboard_rejected_total", "counter", "", "dashboard clients refused (503) over max_clients"),
)
