"""The ``eventlake`` command (contract in docs/ and ARCHITECTURE.md).

Errors print one line, ``error: <what>; <what to do>``, and exit 1; bad arguments exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eventlake.alerting.dispatcher import Dispatcher
from eventlake.alerting.store import fire_alert
from eventlake.batch.days import Days, yesterday
from eventlake.config import Settings, load_settings
from eventlake.errors import EventlakeError, UnreachableError
from eventlake.kafka.admin import admin_client, provision_topics
from eventlake.kafka.security import client_security
from eventlake.logs import configure_logging
from eventlake.observability.console import dq_tables, live_panel
from eventlake.observability.lag import high_watermarks, offsets_read
from eventlake.observability.server import Served, kafka_check, registry_check, serve_health
from eventlake.quality.report import parse_since
from eventlake.quality.rules import load_quality
from eventlake.quality.store import ensure_quality_tables
from eventlake.registry.client import register_schemas
from eventlake.services import Stack, endpoints
from eventlake.services.airflow import AirflowService
from eventlake.services.dashboard import DashboardService
from eventlake.services.jvm import fetch_jars
from eventlake.services.kafka import KafkaService
from eventlake.services.postgres import PostgresService
from eventlake.services.registry import RegistryService
from eventlake.sources.produce import produce as run_produce
from eventlake.stopping import stop_on_signals

app = typer.Typer(
    name="eventlake",
    help="Real-time streaming analytics: Kafka -> Spark Structured Streaming -> Delta Lake / PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
setup_app = typer.Typer(help="One-time setup steps (run by `make setup`).", no_args_is_help=True)
app.add_typer(setup_app, name="setup")
topics_app = typer.Typer(help="Kafka topics provisioned from config.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
schemas_app = typer.Typer(help="Avro schemas in the Schema Registry.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
dq_app = typer.Typer(help="Data quality: rules, results, alerts, anomalies.", no_args_is_help=True)
app.add_typer(dq_app, name="dq")
batch_app = typer.Typer(
    help="Batch jobs (what Airflow schedules), one UTC day at a time; each is idempotent per day.",
    no_args_is_help=True,
)
app.add_typer(batch_app, name="batch")
checkpoints_app = typer.Typer(help="The streaming queries' checkpoints.", no_args_is_help=True)
app.add_typer(checkpoints_app, name="checkpoints")

out = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level)
    return settings


def _progress(name: str, message: str) -> None:
    err.print(f"[bold]{name:<16}[/] {message}")


def _status_table(status: dict[str, dict[str, object]]) -> Table:
    table = Table(title="eventlake stack")
    for col in ("component", "endpoint", "ok", "detail", "pid"):
        table.add_column(col)
    for name, entry in status.items():
        endpoint = entry.get("bootstrap") or entry.get("url") or entry.get("uri") or "-"
        ok = "[green]yes[/]" if entry.get("ok") else "[red]no[/]"
        table.add_row(name, str(endpoint), ok, str(entry.get("detail", "")), str(entry.get("pid") or "-"))
    return table


@app.command()
def up(
    ops: Annotated[
        bool,
        typer.Option("--ops", help="Also run Prometheus and Alertmanager (as EVENTLAKE_OPS_ENABLED=true does)."),
    ] = False,
) -> None:
    """Start the local stack (idempotent) and print the endpoints."""
    settings = _settings()
    if ops:
        settings.ops.enabled = True
    stack = Stack(settings)
    stack.up(_progress)
    status = stack.status()
    out.print(_status_table(status))
    if not all(e.get("ok") for e in status.values()):
        raise EventlakeError("stack started but some components are unhealthy", "see `eventlake status`")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Endpoints and health of each component. Exit 1 if any is unhealthy."""
    stack = Stack(_settings())
    result = stack.status()
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(_status_table(result))
    if not all(e.get("ok") for e in result.values()):
        raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop what `eventlake up` started (safe to run twice)."""
    stopped = Stack(_settings()).down(_progress)
    err.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def run(
    rate: Annotated[float, typer.Option(min=0.1, help="Events/s per source of the demo stream.")] = 20.0,
    faults: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of labelled bad records.")] = 0.02,
) -> None:
    """The live demo: stack up, topics and schemas, a steady produced stream, the streaming jobs.

    One panel refreshes in place; engine and service logs go to files under EVENTLAKE_HOME/logs.
    Ctrl-C/SIGTERM stops within seconds (an interrupted micro-batch is replayed exactly once on the
    next start).
    """
    from eventlake.streaming.jobs import JOBS, DemoFeed, run_jobs  # noqa: PLC0415 - pyspark is slow to import

    up()
    topics_create(schemas=True, strict=False)
    settings = _settings()
    logs = settings.home.resolve() / "logs"
    configure_logging(settings.log_level, file=logs / "eventlake.log")
    live = endpoints(settings)
    board = DashboardService(settings).endpoint()
    err.print(
        f"producing {rate:g} ev/s per source; streaming into {settings.lake_uri} and PostgreSQL gold_* tables"
        + (f"; live dashboard {board}" if board else "")
    )
    err.print(f"starting Spark (logs in {logs}); Ctrl-C stops")
    footer = f"logs: {logs}  ·  Ctrl-C stops"
    lateness = settings.streaming.allowed_lateness_s
    with Live(console=err, refresh_per_second=2, transient=False) as view:

        def show(progress: dict[str, Any]) -> None:
            view.update(live_panel(progress, live.postgres_url, lateness, footer))

        run_jobs(
            settings,
            live,
            list(JOBS),
            until_idle=False,
            on_progress=show,
            progress_every_s=2.0,
            feed=DemoFeed(rate, faults),
        )
    err.print("stopped: producer and queries stopped; every written batch is in the lake and PostgreSQL once")


@app.command()
def dashboard() -> None:
    """Start the live web dashboard (if it is not running) and print its URL."""
    settings = _settings()
    svc = DashboardService(settings)
    if not svc.enabled():
        raise EventlakeError("the dashboard is disabled", "set EVENTLAKE_DASHBOARD_ENABLED=true")
    if svc.running_process() is None:
        if PostgresService(settings).endpoint() is None:
            raise UnreachableError("the dashboard needs PostgreSQL, which is not running", "run `eventlake up`")
        svc.start()
    out.print(f"dashboard: {svc.endpoint()}")


@setup_app.command("jars")
def setup_jars() -> None:
    """Fetch the JVM jars (Kafka, Connect, Spark extensions) from Maven Central."""
    settings = _settings()
    fetch_jars(settings)
    err.print(f"jars ready in {settings.jars_dir}")


class SourceChoice(StrEnum):
    user_activity = "user_activity"
    iot_sensors = "iot_sensors"
    transactions = "transactions"
    all = "all"


def _iso_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time (e.g. 2026-01-01T00:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@contextmanager
def _stopping(server: Served | None) -> Iterator[None]:
    try:
        yield
    finally:
        if server is not None:
            server.stop()


@app.command()
def produce(
    source: Annotated[SourceChoice, typer.Option(help="Which generator; `all` interleaves the three.")],
    count: Annotated[int | None, typer.Option(min=1, help="Records per source (default: until Ctrl-C).")] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Events/s per source (default: unthrottled).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: same seed (+ --start) = same events.")] = 0,
    start: Annotated[
        datetime | None,
        typer.Option(parser=_iso_time, help="Simulated clock start (ISO-8601): event_time = start + i/rate."),
    ] = None,
    faults: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of labelled bad records.")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Generate events and send them to raw.<source> as Avro (idempotent producer)."""
    settings = _settings()
    live = endpoints(settings)
    names = list(settings.topics.sources) if source is SourceChoice.all else [source.value]
    # A long-running producer is a service: /metrics and /health/* (producer records in <home>/run).
    server = None
    if count is None:
        checks = {
            "kafka": kafka_check(live.kafka_bootstrap, client_security(settings)),
            "schema_registry": registry_check(live.registry_url),
        }
        server = serve_health(settings, "producer", checks, settings.metrics.producer_port)
        err.print(f"producer metrics: {server.url}/metrics")
    with (
        Progress(
            *Progress.get_default_columns(), TextColumn("{task.completed} rounds"), console=err, transient=True
        ) as bar,
        _stopping(server),
        stop_on_signals() as stop,
    ):
        task = bar.add_task(f"producing {', '.join(names)}", total=count)
        summary = run_produce(
            settings,
            bootstrap=live.kafka_bootstrap,
            registry_url=live.registry_url,
            sources=names,
            count=count,
            rate=rate,
            seed=seed,
            start_ms=int(start.timestamp() * 1000) if start else None,
            faults=faults,
            progress=lambda i: bar.update(task, completed=i),
            stop=stop,
        )
    report = {
        "sent": summary.sent,
        "delivered": summary.delivered,
        "failed": summary.failed,
        "seconds": round(summary.seconds, 3),
        "events_per_s": round(summary.events_per_s, 1),
        "interrupted": summary.interrupted,
        "sources": {
            n: {
                "topic": s.topic,
                "sent": s.sent,
                "delivered": s.delivered,
                "failed": s.failed,
                "faults": dict(s.faults),
                "anomalies": dict(s.anomalies),
            }
            for n, s in summary.sources.items()
        },
    }
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        table = Table(title=f"produced in {summary.seconds:.1f}s ({summary.events_per_s:,.0f} ev/s)")
        for col in ("source", "sent", "delivered", "failed", "faults", "anomalies"):
            table.add_column(col)
        for n, s in summary.sources.items():
            table.add_row(
                n,
                str(s.sent),
                str(s.delivered),
                str(s.failed),
                ", ".join(f"{k}={v}" for k, v in sorted(s.faults.items())) or "-",
                ", ".join(f"{k}={v}" for k, v in sorted(s.anomalies.items())) or "-",
            )
        out.print(table)
    if summary.failed:
        raise EventlakeError(f"{summary.failed} records were not delivered", "see the log for the errors")
    if summary.interrupted:
        raise typer.Exit(130)


def _print_progress(progress: dict[str, Any]) -> None:
    """One table of the queries' latest figures (from the StreamingQueryListener)."""
    table = Table(title="streaming queries")
    for col in ("query", "batches", "input rows", "rows/s", "batch s", "watermark"):
        table.add_column(col)
    for name, p in sorted(progress.items()):
        table.add_row(
            name,
            str(p.batches),
            str(p.input_rows_total),
            f"{p.processed_rows_per_s:,.0f}",
            f"{p.batch_duration_s:.1f}",
            p.watermark or "-",
        )
    err.print(table)


class Severity(StrEnum):
    warning = "warning"
    critical = "critical"


class JobChoice(StrEnum):
    bronze = "bronze"
    silver = "silver"
    gold = "gold"
    all = "all"


@app.command()
def stream(
    job: Annotated[
        JobChoice, typer.Option(help="Layers the one-pass query writes; `gold` implies silver; `all` (default) all.")
    ] = JobChoice.all,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Process everything available, then exit 0 (availableNow).")
    ] = False,
) -> None:
    """Run the streaming pipeline: one query per source, each micro-batch writing bronze, silver
    (+ quarantine/DLQ) and gold."""
    from eventlake.streaming.jobs import JOBS, run_jobs  # noqa: PLC0415 - pyspark is slow to import

    settings = _settings()
    live = endpoints(settings)
    jobs = list(JOBS) if job is JobChoice.all else [job.value]
    err.print(
        f"streaming {', '.join(jobs)} for {', '.join(settings.topics.sources)}"
        + (" until idle" if until_idle else " (Ctrl-C or SIGTERM stops gracefully)")
    )
    if until_idle:
        topics = [settings.topics.raw(s) for s in settings.topics.sources]
        ends = high_watermarks(live.kafka_bootstrap, topics, security=client_security(settings))
        with Progress(
            TextColumn("offsets"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        ) as bar:
            task = bar.add_task("offsets", total=sum(sum(p.values()) for p in ends.values()))

            def advance(read: dict[str, Any]) -> None:
                bar.update(task, completed=offsets_read(read, ends))

            counts = run_jobs(settings, live, jobs, until_idle=True, on_offsets=advance)
            bar.update(task, completed=bar.tasks[0].total)
        _print_counts(counts)
        return
    counts = run_jobs(settings, live, jobs, until_idle=False, on_progress=_print_progress)
    _print_counts(counts)


class StartChoice(StrEnum):
    committed = "committed"
    latest = "latest"


@checkpoints_app.command("reset")
def checkpoints_reset(
    source: Annotated[SourceChoice, typer.Option(help="Whose query; `all`: every source's.")],
    start: Annotated[
        StartChoice,
        typer.Option(
            "--from",
            help="committed: where the last committed batch ended (nothing read twice or skipped);"
            " latest: skip the backlog (those records reach no layer).",
        ),
    ] = StartChoice.committed,
    yes: Annotated[bool, typer.Option("--yes", help="Do it (the checkpoint is deleted).")] = False,
) -> None:
    """Start a query on a new checkpoint (after Spark refuses the old one); refused while a pipeline
    runs on the lake. The next `eventlake stream` is a new run of the query."""
    if not yes:
        raise EventlakeError("a reset deletes the checkpoint", "add --yes to do it")
    from eventlake.streaming.reset import reset_checkpoints  # noqa: PLC0415 - pyspark is slow to import

    settings = _settings()
    names = list(settings.topics.sources) if source is SourceChoice.all else [source.value]
    for name, starting in reset_checkpoints(settings, endpoints(settings).postgres_url, names, start.value).items():
        err.print(
            f"{name}: checkpoint reset; the next run starts at {starting}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _print_counts(counts: dict[str, Any]) -> None:
    for source, c in counts.items():
        err.print(
            f"{source:<14} input={c.input} silver={c.valid} duplicates={c.duplicates} "
            f"quarantined={sum(c.quarantined.values())}"
        )


@topics_app.command("create")
def topics_create(
    schemas: Annotated[bool, typer.Option(help="Also register data/schemas/*.avsc in the registry.")] = True,
    strict: Annotated[bool, typer.Option(help="Exit 1 if an existing topic differs from config.")] = False,
) -> None:
    """Create raw.*, dlq.* and alert topics from config (idempotent; partitions only ever grow)."""
    settings = _settings()
    bootstrap = KafkaService(settings).endpoint()
    if bootstrap is None:
        raise UnreachableError("Kafka is not running", "run `eventlake up` or set EVENTLAKE_KAFKA_BOOTSTRAP")
    admin = admin_client(bootstrap, client_security(settings))
    results = provision_topics(admin, settings.topics.specs(), settings.kafka.replication_factor)
    table = Table(title=f"topics at {bootstrap}")
    for col in ("topic", "partitions", "action", "detail"):
        table.add_column(col)
    colour = {"created": "green", "partitions_increased": "cyan", "mismatch": "yellow", "unchanged": "white"}
    for r in results:
        table.add_row(r.topic, str(r.partitions), f"[{colour[r.action]}]{r.action}[/]", r.detail)
    out.print(table)
    if schemas:
        schemas_register(directory=None)
    if strict and any(r.action == "mismatch" for r in results):
        raise EventlakeError("some topics differ from config", "see the table above")


@schemas_app.command("register")
def schemas_register(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Folder of <source>.avsc files (default: schemas_dir setting).")
    ] = None,
) -> None:
    """Register data/schemas/*.avsc under TopicNameStrategy subjects (raw.<source>-value)."""
    settings = _settings()
    url = RegistryService(settings).endpoint()
    if url is None:
        raise UnreachableError("the Schema Registry is not running", "run `eventlake up` or set EVENTLAKE_REGISTRY_URL")
    table = Table(title=f"schemas registered at {url}")
    for col in ("subject", "id", "version", "file"):
        table.add_column(col)
    for r in register_schemas(settings, url, directory):
        table.add_row(r.subject, str(r.id), str(r.version), r.file.name)
    out.print(table)


@dq_app.command("check")
def dq_check() -> None:
    """Validate the rules file (quality.rules_file) and list the rules in force per source."""
    settings = _settings()
    quality = load_quality(settings)
    table = Table(title=f"data-quality rules ({settings.quality.rules_file})")
    for col in ("source", "rule", "type", "severity"):
        table.add_column(col)
    for source, rules in quality.by_source.items():
        for r in rules.rules:
            table.add_row(source, r.rule_name, r.type, r.severity)
    out.print(table)
    out.print(f"{len(quality.detectors)} anomaly detectors: {', '.join(d.name for d in quality.detectors)}")


@dq_app.command("report")
def dq_report(
    since: Annotated[str, typer.Option(help="Window to report: 15m, 2h, 7d or an ISO time.")] = "1h",
) -> None:
    """Rule pass rates, open alerts and anomalies from PostgreSQL."""
    try:
        start = parse_since(since)
    except ValueError as ex:
        raise typer.BadParameter(str(ex)) from None
    url = _postgres_url(_settings())
    try:
        ensure_quality_tables(url)
        with psycopg.connect(url, connect_timeout=10) as conn:
            out.print(dq_tables(conn, start))
    except psycopg.OperationalError as ex:
        raise UnreachableError(f"PostgreSQL: {ex}".splitlines()[0], "run `eventlake up`") from ex


airflow_app = typer.Typer(help="Airflow (its own virtualenv) as a managed service of this stack.", no_args_is_help=True)
app.add_typer(airflow_app, name="airflow")


@airflow_app.command("up")
def airflow_up() -> None:
    """Start Airflow (API server, scheduler, DAG processor) on this stack's PostgreSQL; the stack too."""
    settings = _settings()
    stack = Stack(settings)
    stack.up(progress=_progress)  # what Airflow and its tasks need
    svc = AirflowService(settings)
    if svc.running_process() is None:
        _progress("airflow", "starting (db migrate on first start takes a minute)")
        svc.start()
    _progress("airflow", f"running at {svc.display_endpoint()}")


@airflow_app.command("down")
def airflow_down() -> None:
    """Stop Airflow (the rest of the stack keeps running)."""
    stopped = AirflowService(_settings()).stop()
    _progress("airflow", "stopped" if stopped else "was not running")


alert_app = typer.Typer(help="Alerts outside data quality (e.g. a failed Airflow task).", no_args_is_help=True)
app.add_typer(alert_app, name="alert")


@alert_app.command("fire")
def alert_fire(
    key: Annotated[str, typer.Option(help="What the alert is about (one open alert per key).")],
    message: Annotated[str, typer.Option(help="What happened.")],
    severity: Annotated[Severity, typer.Option(help="warning or critical.")] = Severity.critical,
    wait_s: Annotated[float, typer.Option(help="How long to try delivering it now (the rest stays queued).")] = 30.0,
) -> None:
    """Raise an alert through the alert channels (throttled per key like a DQ alert), and deliver it."""
    settings = _settings()
    live = endpoints(settings)
    url = _postgres_url(settings)
    if live.kafka_bootstrap is None:
        raise UnreachableError("Kafka is not running", "run `eventlake up` or set EVENTLAKE_KAFKA_BOOTSTRAP")
    queued = fire_alert(url, settings, key, severity.value, message)
    left = 0
    if queued:
        dispatcher = Dispatcher(settings, url, live.kafka_bootstrap)
        try:
            left = dispatcher.drain(timeout_s=wait_s)
        finally:
            dispatcher.stop()
    out.print(f"alert {key}: {queued or 'throttled (already notified)'}; {left} deliveries still pending")


DateOpt = Annotated[
    datetime | None, typer.Option("--date", formats=["%Y-%m-%d"], help="The logical date (UTC; default: yesterday).")
]
FromOpt = Annotated[datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First day of a range (UTC).")]
ToOpt = Annotated[datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day of a range, included.")]


def _days(date: datetime | None, first: datetime | None, last: datetime | None) -> Days:
    if date is not None and (first or last):
        raise typer.BadParameter("give --date or --from/--to, not both")
    if first or last:
        if not (first and last):
            raise typer.BadParameter("--from and --to go together")
        try:
            return Days(first.date(), last.date())
        except ValueError as ex:
            raise typer.BadParameter(str(ex)) from None
    return Days.one(date.date() if date is not None else yesterday())


def _postgres_url(settings: Settings) -> str:
    url = endpoints(settings).postgres_url
    if url is None:
        raise UnreachableError("PostgreSQL is not running", "run `eventlake up` or set EVENTLAKE_POSTGRES_URL")
    return url


@contextmanager
def _batch_session(name: str) -> Iterator[tuple[Settings, Any, Any]]:
    """Settings, live endpoints and a SparkSession for a batch job (stopped at the end)."""
    from eventlake.streaming.session import build_spark  # noqa: PLC0415 - pyspark is slow to import

    settings = _settings()
    live = endpoints(settings)
    _postgres_url(settings)
    spark = build_spark(settings, f"eventlake-batch-{name}", s3_endpoint=live.s3_endpoint)
    try:
        yield settings, live, spark
    finally:
        spark.stop()


def _print_rows(title: str, rows: list[Any]) -> None:
    table = Table(title=title)
    if not rows:
        out.print(f"{title}: nothing to do")
        return
    names = list(vars(rows[0]))
    for n in names:
        table.add_column(n)
    for r in rows:
        table.add_row(*(str(getattr(r, n)) for n in names))
    out.print(table)


@batch_app.command("rollups")
def batch_rollups(date: DateOpt = None, first: FromOpt = None, last: ToOpt = None) -> None:
    """Hourly and daily rollups of the gold tables (gold_*_1h, gold_*_1d) into PostgreSQL and Delta."""
    from eventlake.batch.rollups import rollups  # noqa: PLC0415

    days = _days(date, first, last)
    with _batch_session("rollups") as (settings, live, spark):
        _print_rows(f"rollups {days}", rollups(spark, settings, live.postgres_url, days))


@batch_app.command("maintenance")
def batch_maintenance(
    lake: Annotated[bool, typer.Option(help="OPTIMIZE (Z-order) + VACUUM every Delta table.")] = True,
    bookkeeping: Annotated[bool, typer.Option(help="Prune PostgreSQL bookkeeping rows past their retention.")] = True,
) -> None:
    """Delta OPTIMIZE (Z-order) + VACUUM on every lake table; prune old PostgreSQL bookkeeping rows."""
    from eventlake.batch.maintenance import optimize_and_vacuum, prune_bookkeeping  # noqa: PLC0415

    if lake:
        with _batch_session("maintenance") as (settings, _, spark):
            _print_rows("Delta tables (files and bytes before/after)", optimize_and_vacuum(spark, settings))
    if bookkeeping:
        settings = _settings()
        _print_rows("bookkeeping rows pruned", prune_bookkeeping(_postgres_url(settings), settings))


@batch_app.command("backfill")
def batch_backfill(
    date: DateOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    source: Annotated[list[str] | None, typer.Option(help="Only these sources (repeatable; default: all).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild days the stream may still change (stop the stream first).")
    ] = False,
) -> None:
    """Rebuild silver and gold of the days from bronze (replaces those days, nothing else)."""
    from eventlake.batch.backfill import backfill, require_final  # noqa: PLC0415

    days = _days(date, first, last)
    if not force:  # before Spark starts: a refused range fails in a second
        settings = _settings()
        require_final(settings, days, tuple(source or ()) or settings.topics.sources)
    with _batch_session("backfill") as (settings, live, spark):
        results = backfill(
            spark,
            settings,
            live.postgres_url,
            live.registry_url,
            days,
            sources=tuple(source or ()) or None,
            force=force,
        )
        _print_rows(f"backfill {days}", results)


@batch_app.command("dq-report")
def batch_dq_report(
    date: DateOpt = None,
    resend: Annotated[bool, typer.Option("--resend", help="Send it again even if it was sent.")] = False,
) -> None:
    """The day's data-quality report: stored in PostgreSQL (dq_reports) and sent to the alert channels."""
    from eventlake.batch.report import dq_report  # noqa: PLC0415

    day = date.date() if date is not None else yesterday()
    with _batch_session("dq-report") as (settings, live, spark):
        report, sent = dq_report(spark, settings, live.postgres_url, live.kafka_bootstrap, day, resend=resend)
    out.print(report.text())
    out.print(f"sent to: {', '.join(sent)}" if sent else "already sent (use --resend to send it again)")


#: the ``spark`` extra's top-level modules (pyproject.toml)
SPARK_MODULES = frozenset({"pyspark", "delta", "deltalake", "pandas", "pyarrow"})


def main() -> None:
    """Console-script entry point: one-line errors, exit 1 for failures and 2 for bad usage."""
    try:
        # Without standalone mode click returns typer.Exit codes instead of raising them.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        err.print("error: aborted")
        sys.exit(130)
    except typer.TyperException as ex:  # bad usage: unknown option, missing argument, bad value
        message = ex.format_message() if hasattr(ex, "format_message") else str(ex)
        err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(getattr(ex, "exit_code", 2))
    except EventlakeError as ex:
        err.print(f"error: {ex}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except ModuleNotFoundError as ex:  # the services image has no Spark: the lake commands say so
        if (ex.name or "").split(".")[0] not in SPARK_MODULES:
            raise
        err.print(
            f"error: this command needs Spark ({ex.name} is not installed); "
            "install eventlake[spark], or run it in the eventlake-spark image",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
