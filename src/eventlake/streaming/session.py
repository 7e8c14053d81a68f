"""The SparkSession every job uses: Maven-fetched extension jars, Delta, small-machine defaults.

A real cluster works by config alone (``EVENTLAKE_STREAMING_MASTER=spark://...`` or
``k8s://...``, and ``streaming.spark_conf`` for its executors' sizes); the jars are shipped with
``spark.jars``. Tested on a standalone cluster on loopback (``tests/chaos/test_spark_cluster.py``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from eventlake.config import LOOPBACK, Settings
from eventlake.jvm import classpath, find_java
from eventlake.lake import s3_credentials

log = logging.getLogger(__name__)

_JAR = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[\w.\-]*)\.jar$")
# Transitive jars that pyspark already ships in another version, or that only serve an old one.
_SKIP = {"shims"}


def _artifact(jar: Path) -> str:
    m = _JAR.match(jar.name)
    return m.group("artifact") if m else jar.stem


def extension_jars(settings: Settings) -> list[Path]:
    """Our Spark jars minus every artifact pyspark ships itself (its versions win, no clashes)."""
    import pyspark  # noqa: PLC0415 - heavy, and only needed here

    bundled = {_artifact(j) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [j for j in classpath(settings, "spark") if _artifact(j) not in bundled | _SKIP]


#: Generated classes Spark keeps compiled (``spark.sql.codegen.cache.maxEntries``, default 100).
CODEGEN_CACHE_ENTRIES = 2000
#: Columns whose values are (nearly) all distinct: bronze's Kafka payload, every event's id and
#: the transaction id. Parquet writes them without a dictionary (see :func:`spark_conf`).
DISTINCT_COLUMNS = ("value", "event_id", "transaction_id")

_LOG4J2 = """\
# Written by eventlake: Spark's own log goes to a file; the console only gets errors.
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
rootLogger.appenderRef.console.ref = console
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{ISO8601}} %p %c{{1}}: %m%n%ex
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = error
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = spark %p %c{{1}}: %m%n
"""


def avro_limits(settings: Settings) -> str:
    """JVM options that bound what Avro allocates for one string, bytes or array field.

    A record under a known schema id whose body is garbage can carry a length field of 2^30: Avro
    allocates that much before it finds the bytes missing, and a few such records took the JVM out
    of heap (OutOfMemoryError in the decode task, measured). Beyond the limit Avro throws, and
    ``from_avro`` in PERMISSIVE mode makes the record undecodable: it goes to quarantine and the DLQ.
    """
    n = settings.streaming.avro_max_length
    return " ".join(f"-Dorg.apache.avro.limits.{kind}.maxLength={n}" for kind in ("string", "bytes", "collectionItems"))


def spark_log_config(settings: Settings) -> Path:
    """The log4j2 file the driver JVM starts with: Spark's log in ``<home>/logs/spark.log``."""
    logs = settings.home.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    conf = logs / "spark-log4j2.properties"
    conf.write_text(_LOG4J2.format(log=logs / "spark.log"))
    return conf


def spark_conf(settings: Settings, *, s3_endpoint: str | None = None) -> dict[str, str]:
    """Every Spark setting eventlake's session starts with (``streaming.spark_conf`` last: it wins).

    ``s3_endpoint``: where the lake's S3 API answers (``Endpoints.s3_endpoint``, e.g. the local
    server's); None: ``settings.s3.endpoint`` (None there too: AWS's own endpoint)."""
    cfg = settings.streaming
    conf = {
        "spark.jars": ",".join(str(j) for j in extension_jars(settings)),
        "spark.driver.memory": cfg.driver_memory,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        "spark.ui.enabled": "false",
        "spark.driver.host": cfg.driver_host,
        # A driver that executors on other hosts reach must listen beyond loopback.
        "spark.driver.bindAddress": LOOPBACK if cfg.driver_host == LOOPBACK else "0.0.0.0",
        "spark.databricks.delta.optimizeMetadataQuery.enabled": "true",
        "spark.sql.adaptive.enabled": "true",
        # A pass batch runs ~270 distinct generated classes (three sources: ~800); Spark's default cache
        # of 100 evicts them, so every batch recompiled its code with Janino and the JIT compiled it
        # again: 531 Janino compiles per 1 M records on a warm JVM, none with this size, and 19 % less
        # JVM CPU (docs/performance.md, session 9). A static conf: set before the session starts.
        "spark.sql.codegen.cache.maxEntries": str(CODEGEN_CACHE_ENTRIES),
        # Delta's snapshot reconstruction defaults to 50 partitions: far too many for a laptop.
        "spark.databricks.delta.snapshotPartitions": str(cfg.shuffle_partitions),
        "spark.ui.showConsoleProgress": "false",
        # Mitigation, root cause not found: once in three kill -9 test runs a Delta append from a side
        # thread failed with DUPLICATED_MAP_KEY "mode" (a map Spark/Delta builds internally; eventlake
        # builds no maps). Last-wins instead of failing the batch; our own data carries no maps.
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        # -Xss: Spark formats a failed or interrupted batch's plan recursively; the default 1 MB stack
        # of its stream threads overflowed doing so at stop (thousands of lines of StackOverflowError).
        "spark.driver.extraJavaOptions": (
            f"-Xss16m -Dlog4j2.configurationFile=file:{spark_log_config(settings)} {avro_limits(settings)}"
            f" {cfg.driver_java_options}"
        ).strip(),
        "spark.executor.extraJavaOptions": avro_limits(settings),
        # Parquet encodes every column chunk's first page with a dictionary and keeps it only if it
        # pays: for columns of distinct values that page's dictionary work is for nothing (dictionary
        # encoding, all columns: 8.8 % of the executors' samples in docs/performance.md's JFR profile,
        # session 18). Per column name, in any table.
        **{f"spark.hadoop.parquet.enable.dictionary#{c}": "false" for c in DISTINCT_COLUMNS},
    }
    if cfg.driver_port:
        conf["spark.driver.port"] = str(cfg.driver_port)
    if cfg.block_manager_port:
        conf["spark.driver.blockManager.port"] = str(cfg.block_manager_port)
    if settings.lake_uri.startswith(("s3://", "s3a://")) or settings.s3.local or settings.s3.endpoint:
        s3 = settings.s3
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        conf["spark.hadoop.fs.s3.impl"] = "org.apache.hadoop.fs.s3a.S3AFileSystem"
        endpoint = s3_endpoint if s3_endpoint is not None else s3.endpoint
        if endpoint:
            conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https")).lower()
        credentials = s3_credentials(settings)
        if credentials is not None:
            conf["spark.hadoop.fs.s3a.access.key"] = credentials[0]
            conf["spark.hadoop.fs.s3a.secret.key"] = credentials[1]
        conf["spark.hadoop.fs.s3a.endpoint.region"] = s3.region
    conf.update(cfg.spark_conf)
    return conf


def build_spark(settings: Settings, app_name: str = "eventlake", *, s3_endpoint: str | None = None) -> SparkSession:
    """Create (or return the running) SparkSession configured for eventlake (:func:`spark_conf`)."""
    java = find_java(settings)
    os.environ.setdefault("JAVA_HOME", str(java.path.parent.parent))
    # Python workers must run the same interpreter as the driver (the venv's).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    builder = SparkSession.builder.appName(app_name).master(settings.streaming.master)
    for key, value in spark_conf(settings, s3_endpoint=s3_endpoint).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if settings.streaming.jvm_nice:
        lower_priority(_jvm_pid(spark), settings.streaming.jvm_nice)
    return spark


def _jvm_pid(spark: SparkSession) -> int | None:
    proc = getattr(spark.sparkContext._gateway, "proc", None)  # None when attached to a running JVM
    return int(proc.pid) if proc is not None else None


def lower_priority(pid: int | None, nice: int) -> int:
    """Raise the nice value of every thread of process ``pid`` to at least ``nice``; returns how many.

    Linux schedules threads, and ``setpriority`` on a pid changes only its main thread, so each task is
    set; threads started later inherit it. Why: on a machine shared with the serving path and a
    producer, the lake path (throughput work, a backlog it catches up on) must yield the CPU to them,
    or PostgreSQL falls behind with it.
    """
    if pid is None or not Path(f"/proc/{pid}/task").is_dir():
        return 0
    changed = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            tid = int(task.name)
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                changed += 1
        except (ProcessLookupError, PermissionError) as err:
            log.debug("thread priority unchanged", extra={"tid": task.name, "error": str(err)})
    log.info("spark jvm priority lowered", extra={"pid": pid, "nice": nice, "threads": changed})
    return changed
