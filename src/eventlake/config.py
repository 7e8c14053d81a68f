"""One typed settings model for the whole platform.

Sources, highest priority first:

1. ``EVENTLAKE_*`` environment variables. Nested fields use one underscore after the section
   name: ``EVENTLAKE_KAFKA_DEFAULT_PARTITIONS=12`` sets ``kafka.default_partitions``,
   ``EVENTLAKE_POSTGRES_URL`` sets ``postgres.url``. Top-level fields: ``EVENTLAKE_HOME``,
   ``EVENTLAKE_JARS_DIR``, ``EVENTLAKE_LOG_LEVEL``, ``EVENTLAKE_JAVA_HOME``.
2. The YAML file named by ``EVENTLAKE_CONFIG``, else ``config/eventlake.yaml`` if it exists.
3. The defaults below.

Every topic, table, path and port the code uses comes from here; nothing else invents names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from eventlake.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("config/eventlake.yaml")
LOOPBACK = "127.0.0.1"

# 0 means "pick a free port on first start, then keep it across restarts"
Port = Annotated[int, Field(ge=0, le=65535)]


class Section(BaseModel):
    """A config section: unknown keys are errors (a typo must not silently become a default)."""

    model_config = ConfigDict(extra="forbid")


KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
ScramMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]
#: a Kafka user name (SCRAM user, ACL principal ``User:<name>``)
KafkaUser = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class KafkaPrincipals(Section):
    """Who is who on a secured cluster (ACL principals ``User:<name>``; see docs/reliability.md).

    ``admin`` is the super user (topics, ACLs, SCRAM users, the broker's own inter-broker identity);
    ``producer`` may write and describe the raw topics, never read them; ``streaming`` (Spark, the
    serving path, the lag probe, the alert and DLQ producers) reads the raw topics and writes DLQ and
    alerts; ``connect`` owns the Connect worker's internal topics and group."""

    admin: KafkaUser = "admin"
    producer: KafkaUser = "producer"
    streaming: KafkaUser = "streaming"
    connect: KafkaUser = "connect"


class KafkaSettings(Section):
    """Kafka cluster. ``bootstrap`` set = use that cluster; unset = eventlake runs a local broker.

    Client security (every Kafka client of this process: producer, Spark, serving path, lag probe,
    alert channel, Connect worker): ``security_protocol`` with, for ``SASL_*``, a SCRAM
    ``sasl_mechanism``, ``sasl_username`` and the password from ``sasl_password``
    (``EVENTLAKE_KAFKA_SASL_PASSWORD``) or ``sasl_password_file`` (read when a client is made), and
    for ``*SSL`` the CA certificate (PEM) that signed the brokers' certificates, ``ssl_ca_file``.
    ``eventlake.kafka.security`` turns this into each client's own option names.

    ``secure`` = the local broker serves SASL_SSL only (no PLAINTEXT listener), with the
    StandardAuthorizer, ``principals.admin`` as super user, certificates made at first start
    (``<home>/kafka/tls``), a generated password per principal (``secrets_dir``, mode 0600) and the
    platform's ACLs. Its own processes then connect as the admin unless ``sasl_username`` is set.
    """

    bootstrap: str | None = None
    host: str = LOOPBACK
    port: Port = 0
    controller_port: Port = 0
    default_partitions: int = Field(default=6, gt=0, le=10_000)
    replication_factor: int = Field(default=1, gt=0, le=7)
    heap: str = Field(default="768m", pattern=r"^\d+[mMgG]$")
    start_timeout_s: float = Field(default=90.0, gt=0)
    #: how long ``eventlake produce`` keeps a record it could not deliver (buffered, retried by the
    #: idempotent producer) before it reports it failed (librdkafka ``message.timeout.ms``). It must
    #: outlast a broker outage: with librdkafka's 300 s, the records queued in the first seconds of
    #: a 300 s outage (tests/chaos/test_broker_loss.py) would expire just before the broker is back.
    #: A full local queue (500,000 records or 1 GiB) blocks the producer meanwhile: backpressure,
    #: not loss
    producer_delivery_timeout_s: float = Field(default=1800.0, gt=0, le=86_400)
    security_protocol: KafkaProtocol = "PLAINTEXT"
    sasl_mechanism: ScramMechanism = "SCRAM-SHA-512"
    sasl_username: KafkaUser | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_ca_file: Path | None = None
    #: the broker's certificate must name the host it is reached at (hostname verification)
    ssl_check_hostname: bool = True
    secure: bool = False
    principals: KafkaPrincipals = KafkaPrincipals()
    #: the local secure broker's generated passwords, one file per principal; default <home>/kafka/secrets
    secrets_dir: Path | None = None

    @model_validator(mode="after")
    def _credentials(self) -> KafkaSettings:
        if self.sasl_password is not None and self.sasl_password_file is not None:
            raise ValueError("set sasl_password or sasl_password_file, not both")
        if self.security_protocol.startswith("SASL_") and self.sasl_username is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username")
        if (
            self.security_protocol.startswith("SASL_")
            and self.sasl_password is None
            and self.sasl_password_file is None
        ):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_password or sasl_password_file")
        return self


class PostgresSettings(Section):
    """PostgreSQL. ``url`` set = use that server; unset = eventlake runs a local server."""

    url: SecretStr | None = None
    host: str = LOOPBACK
    port: Port = 0
    database: str = Field(default="eventlake", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    user: str = Field(default="eventlake", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    # OS account that owns the local server when eventlake runs as root (initdb refuses root).
    os_user: str = Field(default="eventlake-pg", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    start_timeout_s: float = Field(default=60.0, gt=0)


class S3Settings(Section):
    """S3 API for the lake. ``local`` = eventlake runs an S3 server; else use ``endpoint``.

    ``server`` picks the local one: ``minio`` (real MinIO, objects on disk under ``<home>/minio``;
    the binary ``minio_bin`` is built by ``make setup``), ``moto`` (moto's server, in memory: tests
    that inject S3 faults) or ``auto`` (MinIO when ``minio_bin`` exists, else moto).
    """

    local: bool = False
    server: Literal["auto", "minio", "moto"] = "auto"
    minio_bin: Path = Path(".eventlake/tools/bin/minio")
    endpoint: str | None = None
    host: str = LOOPBACK
    port: Port = 0
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    bucket: str = Field(default="eventlake", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    start_timeout_s: float = Field(default=60.0, gt=0)

    @property
    def local_server(self) -> Literal["minio", "moto"]:
        """The local S3 server ``server`` resolves to (``auto``: MinIO if its binary is built)."""
        if self.server != "auto":
            return self.server
        return "minio" if os.access(self.minio_bin, os.X_OK) else "moto"


class LakeSettings(Section):
    """Delta lake root: ``file:///abs/path`` (default ``<home>/lake``) or ``s3://bucket/prefix``."""

    uri: str | None = None

    @field_validator("uri")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("file://", "s3://", "s3a://")):
            raise ValueError("must start with file://, s3:// or s3a://")
        return v


class RegistrySettings(Section):
    """Schema Registry. ``url`` set = use that registry; unset = eventlake runs its own.

    Writes (register, delete, config/mode changes) need ``auth_token`` (Bearer) or
    ``basic_auth`` ("user:password") when either is set; reads stay open.
    """

    url: str | None = None
    enabled: bool = True
    host: str = LOOPBACK
    port: Port = 0
    auth_token: SecretStr | None = None
    basic_auth: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)


SOURCES = ("user_activity", "iot_sensors", "transactions")
DAY_MS = 24 * 3600 * 1000


class TopicSpec(Section):
    """How one topic is provisioned (``eventlake topics create``)."""

    partitions: int = Field(default=6, gt=0, le=10_000)
    replication_factor: int | None = Field(default=None, gt=0, le=7)  # None: kafka.replication_factor
    retention_ms: int = Field(default=7 * DAY_MS, ge=-1)  # -1: keep forever
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"
    compression_type: Literal["producer", "zstd", "lz4", "snappy", "gzip", "uncompressed"] = "producer"
    min_insync_replicas: int = Field(default=1, gt=0)
    #: ``LogAppendTime``: the broker stamps each record with its own clock, so a producer host whose
    #: clock runs fast cannot date its records ahead: silver's ``future`` rule (event time vs Kafka
    #: timestamp) then catches them instead of letting them move their partitions' lateness horizon,
    #: and retention is counted from when the broker got a record. ``CreateTime`` trusts producers.
    timestamp_type: Literal["LogAppendTime", "CreateTime"] = "LogAppendTime"

    def configs(self) -> dict[str, str]:
        """Broker-side topic configs this spec sets (and checks on existing topics)."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            "compression.type": self.compression_type,
            "min.insync.replicas": str(self.min_insync_replicas),
            "message.timestamp.type": self.timestamp_type,
        }


class TopicSettings(Section):
    """Topic names and their provisioning. Subjects follow TopicNameStrategy: ``<topic>-value``."""

    sources: tuple[str, ...] = SOURCES
    raw_prefix: str = Field(default="raw.", pattern=r"^[A-Za-z0-9._-]*$")
    dlq_prefix: str = Field(default="dlq.", pattern=r"^[A-Za-z0-9._-]*$")
    alerts: str = Field(default="eventlake.alerts", pattern=r"^[A-Za-z0-9._-]+$")
    raw_spec: TopicSpec = TopicSpec()
    dlq_spec: TopicSpec = TopicSpec(partitions=3, retention_ms=30 * DAY_MS)
    alerts_spec: TopicSpec = TopicSpec(partitions=1, retention_ms=30 * DAY_MS)
    #: per-topic exceptions, by full topic name
    overrides: dict[str, TopicSpec] = {}

    def raw(self, source: str) -> str:
        return f"{self.raw_prefix}{source}"

    def dlq(self, source: str) -> str:
        return f"{self.dlq_prefix}{source}"

    def specs(self) -> dict[str, TopicSpec]:
        """Every topic eventlake provisions, by name."""
        out = {self.raw(s): self.raw_spec for s in self.sources}
        out |= {self.dlq(s): self.dlq_spec for s in self.sources}
        out[self.alerts] = self.alerts_spec
        return out | {name: spec for name, spec in self.overrides.items() if name in out}


class Range(Section):
    """Inclusive bounds of a numeric field; either side may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


#: Required (non-null) fields per source: the contract in docs/architecture.md.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "user_activity": ("event_id", "event_time", "user_id", "session_id", "event_type", "page", "device", "country"),
    "iot_sensors": ("event_id", "event_time", "device_id", "sensor_type", "value", "unit"),
    "transactions": (
        "event_id",
        "event_time",
        "transaction_id",
        "account_id",
        "merchant_id",
        "merchant_category",
        "amount",
        "currency",
        "status",
    ),
}
DEFAULT_RANGES: dict[str, dict[str, Range]] = {
    "user_activity": {"duration_ms": Range(min=0, max=6 * 3600 * 1000)},
    "iot_sensors": {"value": Range(min=-50, max=5000), "battery_pct": Range(min=0, max=100)},
    "transactions": {"amount": Range(min=0.01, max=1_000_000)},
}


class SourceSettings(Section):
    """The simulated sources and what a valid event of each looks like (silver validates this)."""

    #: simulated-clock rate (events/s) when `produce` gets no --rate; sending is then unthrottled
    default_rate: float = Field(default=100.0, gt=0)
    #: out-of-order jitter of event_time, within this bound (ms)
    jitter_ms: int = Field(default=2_000, ge=0)
    users: int = Field(default=5_000, gt=0)
    devices: int = Field(default=200, gt=0)
    accounts: int = Field(default=2_000, gt=0)
    merchants: int = Field(default=300, gt=0)
    required: dict[str, tuple[str, ...]] = REQUIRED_FIELDS
    ranges: dict[str, dict[str, Range]] = DEFAULT_RANGES


class StreamingSettings(Section):
    """Spark and event-time policy, shared by producers (late faults) and the streaming jobs."""

    #: events older than the watermark (max event_time seen - this) are late
    allowed_lateness_s: int = Field(default=120, ge=0)
    #: events dated more than this ahead of their Kafka timestamp are quarantined as ``future``
    #: (a device clock running fast must not move its partition's lateness horizon)
    max_future_skew_s: int = Field(default=60, ge=0)
    master: str = "local[2]"
    #: the address executors reach the driver at (``spark.driver.host``). The default keeps a local
    #: driver on loopback; on a cluster set the driver's own name (a Compose service, a Kubernetes
    #: headless Service): the driver then binds every interface (``spark.driver.bindAddress`` 0.0.0.0)
    driver_host: str = LOOPBACK
    #: the driver's RPC and block-manager ports (0: any free port); fixed ports let a container or a
    #: Kubernetes Service expose them to the executors
    driver_port: Port = 0
    block_manager_port: Port = 0
    #: more Spark settings, applied last (they win): what a cluster needs, e.g.
    #: ``{"spark.executor.memory": "2g", "spark.cores.max": "8"}`` (env: JSON)
    spark_conf: dict[str, str] = Field(default_factory=dict)
    shuffle_partitions: int = Field(default=2, gt=0)
    driver_memory: str = Field(default="2g", pattern=r"^\d+[mMgG]$")
    #: more JVM options of the driver (GC, JIT), after eventlake's own (``local[N]``: the executors
    #: run in the driver's JVM too). By default ParallelGC (+14.5 % events/s, -14 % CPU per event over
    #: G1 in three A/B pairs) and C2 only, no tiered compilation (+15 % events/s, -19 % CPU per event
    #: in four more pairs: the JIT's threads took a quarter of the lake path's CPU, recompiling tier by
    #: tier; a cold JVM's first batches are 6-11 % slower): ``bench/pipeline.py``, docs/performance.md.
    #: ParallelGC's stop-the-world pauses on a 2 GB heap delay the lake path only (PostgreSQL gold is
    #: the serving path's). A value replaces the whole default, e.g. ``-XX:+UseG1GC``
    driver_java_options: str = "-XX:+UseParallelGC -XX:-TieredCompilation"
    #: micro-batch interval (a batch that takes longer is followed at once by the next)
    trigger_s: float = Field(default=1.0, gt=0)
    max_offsets_per_trigger: int = Field(default=200_000, gt=0)
    #: Delta gold gathers closed windows for this long (event time) before one MERGE writes them all:
    #: a MERGE is a dozen Spark jobs and a Delta commit, so merging every window as it closes (each
    #: minute) made it the largest fixed cost of a live micro-batch. Delta gold then lags the lateness
    #: horizon by up to this much (PostgreSQL gold, the serving layer, does not wait); a window a
    #: lagging partition changes after its MERGE is merged again at once. 0: every batch that closes
    #: a window merges it. The MERGEs fall on a grid of this interval, each source's shifted by its
    #: place among ``topics.sources`` (a third of it for three), so that the sources' MERGEs fall in
    #: different batches; one less than half an interval after the last is skipped. The open-window
    #: state holds up to 1.5 times this much more event time of rows.
    gold_delta_every_s: int = Field(default=300, ge=0)
    #: how long one attempt of the Kafka source's offset look-up (its AdminClient's ListOffsets) may
    #: take before Spark tries again (``fetchOffset.numRetries`` times, then the query fails and is
    #: restarted): an attempt in flight when a partition leader dies waits out the whole timeout even
    #: after a new leader is elected (Kafka's default 60 s stalled every query that long, measured)
    kafka_api_timeout_s: float = Field(default=10.0, ge=1.0)
    #: checkpoints; default <home>/checkpoints (put it next to an S3 lake in production)
    checkpoint_dir: str | None = None
    #: CPU priority of the local Spark JVM (Linux nice, 0 = unchanged): on a machine it shares with the
    #: serving path and producers, the lake path yields and falls behind first, PostgreSQL does not
    jvm_nice: int = Field(default=10, ge=0, le=19)
    #: the longest string/bytes field (and the most array items) Avro decodes; a longer length field
    #: makes the record undecodable instead of an allocation of that size (no field of a Kafka record
    #: can be longer than the record, whose broker default limit is 1 MiB)
    avro_max_length: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: a failed query (or the serving path) is restarted after a backoff (1 s, doubling, at most
    #: ``restart_backoff_max_s``); more than ``max_restarts`` failures of one within
    #: ``restart_window_s`` stop the pipeline (0: the first failure stops it). A failure while Kafka,
    #: PostgreSQL, the registry or S3 does not answer is an outage's: retried every
    #: ``restart_backoff_max_s`` while it lasts, not counted (``eventlake.streaming.supervisor``)
    max_restarts: int = Field(default=20, ge=0)
    restart_window_s: float = Field(default=900.0, gt=0)
    restart_backoff_max_s: float = Field(default=30.0, gt=0)


class ServingSettings(Section):
    """The serving path (``eventlake.serving``): raw topics to PostgreSQL gold in Python, in well
    under a second, beside the Spark lake path (which then leaves PostgreSQL gold to it)."""

    #: false: Spark's pass writes PostgreSQL gold itself, once per micro-batch (seconds, not sub-second)
    enabled: bool = True
    #: how often the changed windows are written (with the Kafka positions, one transaction)
    flush_ms: int = Field(default=250, ge=10, le=60_000)
    #: positions are written at least this often while records arrive that change no window
    commit_every_s: float = Field(default=5.0, gt=0)
    #: windows are held until the slowest partition's horizon passes them, but at most this long
    #: behind the newest event of their source (a partition lagging more than this updates Delta gold
    #: only); also bounds memory
    max_hold_s: int = Field(default=900, ge=60)
    #: ``--until-idle``: the Spark pass writes PostgreSQL gold and hands its Kafka positions to the
    #: serving path (``eventlake.serving.handoff``), which then rebuilds its live state at its next
    #: start, instead of running beside the pass. false: the serving path runs beside the pass (two
    #: processes decode every record; the live state is built when the run ends)
    hand_off_until_idle: bool = True


class BatchSettings(Section):
    """The batch side that Airflow schedules: rollups, Delta maintenance, backfills, daily DQ reports."""

    #: VACUUM keeps files removed less than this long ago. A batch replayed after a crash reads silver
    #: as of the version it first started from, so a stream down for longer than this could not
    #: replay; Delta's own check refuses less than its 7-day default, and so does this setting.
    vacuum_retention_hours: int = Field(default=168, ge=168)
    #: OPTIMIZE compacts small files up to about this size
    optimize_target_file_mb: int = Field(default=128, gt=0)
    #: rows of the PostgreSQL bookkeeping tables (DQ results, stream commits, watermarks, sent alert
    #: deliveries) older than this are pruned by the maintenance job
    bookkeeping_retention_days: int = Field(default=30, gt=0)
    #: the daily DQ report compares a day's volume with the average of this many days before it
    report_baseline_days: int = Field(default=7, gt=0)


class AirflowSettings(Section):
    """Airflow (scheduler, API server, DAG processor: ``airflow standalone``) as a managed service.

    Off by default: ``eventlake airflow up`` starts it, or ``EVENTLAKE_AIRFLOW_ENABLED=true`` with
    ``eventlake up``. Its metadata lives in database ``database`` of the platform's PostgreSQL."""

    enabled: bool = False
    host: str = LOOPBACK
    port: Port = 0
    #: Airflow's own virtualenv (``make setup`` creates it; Airflow pins its own web stack)
    venv: Path = Path(".venv-airflow")
    dags_folder: Path = Path("airflow/dags")
    database: str = Field(default="airflow", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    start_timeout_s: float = Field(default=240.0, gt=0)
    #: retries of every DAG task (exponential backoff from 2 minutes) before its failure alert
    task_retries: int = Field(default=2, ge=0, le=10)


class QualitySettings(Section):
    """Data-quality rules and anomaly detectors (see ``eventlake.quality.rules``)."""

    rules_file: Path = Path("config/quality.yaml")


class SlackSettings(Section):
    """Slack incoming webhook (``EVENTLAKE_SLACK_WEBHOOK_URL``); unset = no Slack channel."""

    webhook_url: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class SmtpSettings(Section):
    """SMTP server for alert email (``EVENTLAKE_SMTP_HOST``/``_PORT``); unset host = no email channel."""

    host: str | None = None
    port: Port = 25
    starttls: bool = False
    user: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class AlertSettings(Section):
    """Alert routing, dedupe and delivery (``eventlake.alerting``)."""

    email_from: str = "eventlake@localhost"
    #: comma-separated recipients (``EVENTLAKE_ALERT_EMAIL_TO``); unset = no email channel
    email_to: str | None = None
    #: at most one firing notification per alert key per this many seconds
    throttle_s: float = Field(default=900.0, ge=0)
    #: a condition must stay clear this long before the alert resolves
    resolve_after_s: float = Field(default=60.0, ge=0)
    #: delivery retries: exponential backoff from base to max, then given up after max_attempts
    retry_base_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=20, gt=0)
    #: how often the dispatcher looks for notifications to deliver
    poll_s: float = Field(default=1.0, gt=0)

    @property
    def recipients(self) -> list[str]:
        return [a.strip() for a in (self.email_to or "").split(",") if a.strip()]


class MetricsSettings(Section):
    """``/metrics`` and ``/health/*`` of the streaming, serving and producer processes (0 = a free port)."""

    host: str = LOOPBACK
    streaming_port: Port = 0
    #: the serving path's own process (``eventlake stream``/``run`` start it beside Spark)
    serving_port: Port = 0
    producer_port: Port = 0
    #: a micro-batch slower than this is over the SLO (Prometheus rule, dashboard)
    batch_slo_s: float = Field(default=30.0, gt=0)


class DashboardSettings(Section):
    """The live web dashboard (``eventlake dashboard``), started by ``eventlake up``."""

    enabled: bool = True
    host: str = LOOPBACK
    port: Port = 0
    #: required (Bearer) by mutating endpoints; unset = they are disabled
    token: SecretStr | None = None
    #: how often the page gets fresh figures (server-sent events)
    refresh_s: float = Field(default=5.0, gt=0)
    #: how much history the charts show
    window_minutes: int = Field(default=30, gt=0, le=24 * 60)
    #: server-sent-events clients served at once; one more is answered 503 with Retry-After (every
    #: client shares one snapshot per refresh, so this bounds sockets and memory, not queries)
    max_clients: int = Field(default=50, gt=0, le=10_000)
    #: PostgreSQL connections of the dashboard (pool): the snapshot task, /api/snapshot, health, resolve
    pool_size: int = Field(default=4, ge=2, le=50)
    #: how long a request waits for a pooled connection (and a new connection for its handshake)
    pool_timeout_s: float = Field(default=5.0, gt=0)
    #: the streaming process's HTTP endpoint (``/metrics``) for the pipeline panel; unset: the URL
    #: the streaming process leaves in ``<home>/run/streaming.json`` (both on one machine). Set it
    #: when the dashboard runs elsewhere (another container or pod), e.g. ``http://streaming:9108``
    streaming_url: str | None = None


class ConnectSettings(Section):
    """Kafka Connect worker (distributed mode); off until a pipeline needs it."""

    enabled: bool = False
    url: str | None = None
    host: str = LOOPBACK
    port: Port = 0


#: Duration of Prometheus' TSDB retention (``15d``, ``12h``): Prometheus' own duration syntax
PrometheusDuration = Annotated[str, Field(pattern=r"^\d+(ms|s|m|h|d|w|y)$")]


class OpsSettings(Section):
    """The operations stack of the local platform: Prometheus and Alertmanager (Debian packages
    ``prometheus``, ``prometheus-alertmanager``) as managed services (``eventlake up --ops``).

    Prometheus scrapes every eventlake ``/metrics`` endpoint the stack records in ``<home>/run``
    (file-based discovery, rewritten as processes come and go), evaluates ``rules_file`` (the same
    file the Compose stack mounts) and sends alerts to Alertmanager, whose routes come from
    ``alertmanager_config`` and whose receivers are the ``slack``/``smtp`` settings."""

    enabled: bool = False
    host: str = LOOPBACK
    prometheus_port: Port = 0
    alertmanager_port: Port = 0
    #: binaries on PATH (or absolute paths); Debian installs Alertmanager as ``prometheus-alertmanager``
    prometheus_bin: str = "prometheus"
    alertmanager_bin: tuple[str, ...] = ("prometheus-alertmanager", "alertmanager")
    scrape_interval_s: float = Field(default=15.0, ge=1)
    evaluation_interval_s: float = Field(default=15.0, ge=1)
    #: the platform's recording and alerting rules (shared with config/prometheus/prometheus.yml)
    rules_file: Path = Path("config/prometheus/rules/eventlake.yml")
    #: more rule files evaluated beside it (site-specific rules)
    extra_rules_files: tuple[Path, ...] = ()
    #: routes, grouping and inhibitions (shared with the Compose stack); receivers are added from settings
    alertmanager_config: Path = Path("config/alertmanager/alertmanager.yml")
    #: when set, replace that timing on every route of ``alertmanager_config`` (tests use seconds)
    group_wait_s: float | None = Field(default=None, gt=0)
    group_interval_s: float | None = Field(default=None, gt=0)
    repeat_interval_s: float | None = Field(default=None, gt=0)
    retention: PrometheusDuration = "15d"
    start_timeout_s: float = Field(default=60.0, gt=0)


class Settings(BaseSettings):
    """The whole platform's configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="EVENTLAKE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        case_sensitive=False,
    )

    home: Path = Path(".eventlake")
    jars_dir: Path = Path(".eventlake/jars")
    schemas_dir: Path = Path("data/schemas")
    java_home: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    s3: S3Settings = S3Settings()
    lake: LakeSettings = LakeSettings()
    registry: RegistrySettings = RegistrySettings()
    connect: ConnectSettings = ConnectSettings()
    topics: TopicSettings = TopicSettings()
    sources: SourceSettings = SourceSettings()
    streaming: StreamingSettings = StreamingSettings()
    serving: ServingSettings = ServingSettings()
    quality: QualitySettings = QualitySettings()
    batch: BatchSettings = BatchSettings()
    airflow: AirflowSettings = AirflowSettings()
    slack: SlackSettings = SlackSettings()
    smtp: SmtpSettings = SmtpSettings()
    alert: AlertSettings = AlertSettings()
    metrics: MetricsSettings = MetricsSettings()
    dashboard: DashboardSettings = DashboardSettings()
    ops: OpsSettings = OpsSettings()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        # Resolve once, so that child processes started elsewhere see the same folders.
        self.home = self.home.expanduser().resolve()
        self.jars_dir = self.jars_dir.expanduser().resolve()
        self.schemas_dir = self.schemas_dir.expanduser().resolve()
        self.s3.minio_bin = self.s3.minio_bin.expanduser().resolve()
        self.quality.rules_file = self.quality.rules_file.expanduser().resolve()
        self.airflow.venv = self.airflow.venv.expanduser().resolve()
        self.airflow.dags_folder = self.airflow.dags_folder.expanduser().resolve()
        self.ops.rules_file = self.ops.rules_file.expanduser().resolve()
        self.ops.extra_rules_files = tuple(p.expanduser().resolve() for p in self.ops.extra_rules_files)
        self.ops.alertmanager_config = self.ops.alertmanager_config.expanduser().resolve()
        k = self.kafka
        k.secrets_dir = (k.secrets_dir or self.home / "kafka" / "secrets").expanduser().resolve()
        for name in ("sasl_password_file", "ssl_ca_file"):
            if (path := getattr(k, name)) is not None:
                setattr(k, name, path.expanduser().resolve())
        return self

    @property
    def kafka_tls_dir(self) -> Path:
        """The local secure broker's CA and certificate (made at its first start)."""
        return self.home / "kafka" / "tls"

    @property
    def lake_uri(self) -> str:
        return self.lake.uri or (self.home / "lake").as_uri()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = config_file_path()
        if config_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def config_file_path() -> Path | None:
    """The YAML file in force: ``$EVENTLAKE_CONFIG``, else ``config/eventlake.yaml`` if present."""
    explicit = os.environ.get("EVENTLAKE_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"EVENTLAKE_CONFIG={explicit} is not a file", "point it at a YAML file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


_CREDENTIALS_IN_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


_SECRET_WORDS = ("secret", "password", "key", "token", "auth", "webhook")


def _masked(field: str, value: Any) -> Any:
    """``value`` with every secret-named field hidden, in nested sections too (a section-level check
    reports the whole section as its input, e.g. ``kafka`` with its ``sasl_password``)."""
    if any(word in field.lower() for word in _SECRET_WORDS):
        return "<hidden>"
    if isinstance(value, dict):
        return {k: _masked(str(k), v) for k, v in value.items()}
    return value


def _shown(field: str, value: Any) -> str:
    """The offending value as it may appear in an error: secrets hidden, URL passwords masked."""
    if any(word in field.lower() for word in _SECRET_WORDS):
        return "<hidden>"
    return _CREDENTIALS_IN_URL.sub(r"\1***@", repr(_masked("", value)))


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        env = "EVENTLAKE_" + "_".join(str(p) for p in e["loc"][:2]).upper()
        shown = _shown(field, e.get("input"))
        parts.append(f"{field} = {shown}: {e['msg']} (set by {env} or the config file)")
    return "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Load and validate settings; raise :class:`ConfigError` naming each bad field and value."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        where = config_file_path()
        raise ConfigError(
            f"invalid configuration: {_describe(err)}",
            f"fix the value in the environment or in {where or 'config/eventlake.yaml'}",
        ) from err
