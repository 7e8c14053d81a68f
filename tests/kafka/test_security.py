"""A real secured broker on loopback (``kafka.secure``: SASL_SSL with SCRAM-SHA-512, certificates made
by this test run, the StandardAuthorizer and the platform's ACLs), used by eventlake's own clients:
the producer as ``producer``; the lag probe, the serving-path consumer, Spark's Kafka source and the
DLQ sink as ``streaming``; a Kafka Connect worker as ``connect``. The refusals are tested too: the
producer principal reading, the streaming principal writing raw topics, a wrong password; and no
password appears in logs, in ``status`` or in a Spark plan."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.kafka.admin import admin_client, kafka_health, provision_topics
from eventlake.kafka.security import admin_security, client_security, local_ca_file, local_password_file
from eventlake.observability.lag import LagCollector, high_watermarks
from eventlake.quality.rules import load_quality
from eventlake.services import Stack
from eventlake.services.connect import ConnectService
from eventlake.services.kafka import KafkaService
from eventlake.services.process import wait_until
from eventlake.serving.engine import ServingPath
from tests.conftest import MakeSettings
from tests.streams import send

START = 1_767_225_600_000
SOURCE = "iot_sensors"
N = 400
EVENTLAKE = str(Path(sys.executable).parent / "eventlake")


class Secure:
    """The secured broker and how each principal reaches it."""

    def __init__(self, settings: Settings, bootstrap: str, live: Endpoints, make_settings: MakeSettings) -> None:
        self.settings, self.bootstrap, self.make_settings = settings, bootstrap, make_settings
        self.live = Endpoints(bootstrap, live.postgres_url, live.registry_url, live.lake_uri, live.s3_endpoint)
        self.raw = settings.topics.raw(SOURCE)

    def password(self, principal: str) -> str:
        return local_password_file(self.settings, principal).read_text()

    def passwords(self) -> list[str]:
        return [self.password(p) for p in ("admin", "producer", "streaming", "connect")]

    def kafka(self, principal: str, **extra: Any) -> dict[str, Any]:
        """``kafka`` settings of a client that is ``principal`` (password from its file)."""
        return {
            "bootstrap": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_username": principal,
            "sasl_password_file": str(local_password_file(self.settings, principal)),
            "ssl_ca_file": str(local_ca_file(self.settings)),
            **extra,
        }

    def as_(self, principal: str, **kafka: Any) -> Settings:
        return self.make_settings(f"as-{principal}", kafka=self.kafka(principal, **kafka))

    def env(self, principal: str, home: Path) -> dict[str, str]:
        """The environment of an ``eventlake`` process that is ``principal``."""
        return {
            "EVENTLAKE_HOME": str(home),
            "EVENTLAKE_KAFKA_BOOTSTRAP": self.bootstrap,
            "EVENTLAKE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "EVENTLAKE_KAFKA_SASL_USERNAME": principal,
            "EVENTLAKE_KAFKA_SASL_PASSWORD_FILE": str(local_password_file(self.settings, principal)),
            "EVENTLAKE_KAFKA_SSL_CA_FILE": str(local_ca_file(self.settings)),
            "EVENTLAKE_POSTGRES_URL": self.live.postgres_url,
            "EVENTLAKE_REGISTRY_URL": self.live.registry_url,
            "EVENTLAKE_LOG_LEVEL": "DEBUG",
        }


@pytest.fixture(scope="module")
def secure(make_settings: MakeSettings, stack: Stack, live: Endpoints) -> Iterator[Secure]:
    """The secured broker (the session stack gives the registry and PostgreSQL), topics provisioned
    by the admin and ``N`` Avro events produced by the producer principal."""
    settings = make_settings("secure", kafka={"secure": True})
    service = KafkaService(settings)
    state = service.start()
    try:
        provision_topics(admin_client(state.endpoint, admin_security(settings)), settings.topics.specs(), 1)
        sec = Secure(settings, state.endpoint, live, make_settings)
        summary = send(sec.as_("producer"), sec.live, [SOURCE], N, seed=7, start_ms=START)
        assert summary.sent == summary.delivered == N and summary.failed == 0
        yield sec
    finally:
        service.stop()


def _poll_until(
    consumer: Consumer, want: int, timeout: float = 60.0, ignore: frozenset[int] = frozenset()
) -> tuple[list[bytes], list[KafkaError]]:
    """Values until ``want`` of them or the first error (not one of ``ignore``), or ``timeout``."""
    values: list[bytes] = []
    errors: list[KafkaError] = []
    deadline = time.monotonic() + timeout
    while len(values) < want and not errors and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF and err.code() not in ignore:
                errors.append(err)
            continue
        values.append(msg.value() or b"")
    return values, errors


def test_broker_serves_sasl_ssl_only_with_secrets_in_0600_files(secure: Secure) -> None:
    settings = secure.settings
    for path in [
        *(local_password_file(settings, p) for p in ("admin", "producer", "streaming", "connect")),
        settings.kafka_tls_dir / "broker.pem",
        settings.kafka_tls_dir / "ca.key",
        KafkaService(settings).dir / "server.properties",
    ]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    props = (KafkaService(settings).dir / "server.properties").read_text()
    assert "PLAINTEXT://" not in props and "StandardAuthorizer" in props
    # Nothing the broker printed holds a password. (Its log4j output is empty on this classpath: SLF4J
    # finds no binding and logs nothing; Kafka would print password-typed configs as [hidden].)
    service = KafkaService(settings)
    text = (service.logs_dir / "server.log").read_text() + (service.dir / "kafka.out").read_text()
    assert not [p for p in secure.passwords() if p in text]
    # A client without TLS and SASL gets nothing.
    assert not kafka_health(secure.bootstrap, timeout=3).ok


def test_producer_writes_streaming_principal_reads_through_lag_probe_and_serving_consumer(secure: Secure) -> None:
    streaming = secure.as_("streaming")
    security = client_security(streaming)
    ends = high_watermarks(secure.bootstrap, [secure.raw], security=security)
    assert sum(ends[secure.raw].values()) == N
    lag = LagCollector(secure.bootstrap, lambda: {"q": {secure.raw: dict.fromkeys(ends[secure.raw], 0)}}, security)
    try:
        assert sum(lag.lag().values()) == N
    finally:
        lag.close()
    # The serving path's own consumer (its config, with the streaming identity) reads every record.
    serving = ServingPath(streaming, secure.live, load_quality(streaming))
    try:
        serving.consumer.assign([TopicPartition(secure.raw, p, 0) for p in ends[secure.raw]])
        values, errors = _poll_until(serving.consumer, N)
    finally:
        serving.consumer.close()
    assert errors == [] and len(values) == N
    assert all(v[:1] == b"\x00" for v in values)  # Confluent wire format: the producer's Avro records


def test_producer_principal_cannot_read_and_streaming_cannot_write_raw(secure: Secure) -> None:
    producer = secure.as_("producer")
    consumer = Consumer(
        {
            "bootstrap.servers": secure.bootstrap,
            "group.id": f"eventlake-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            **client_security(producer).librdkafka(),
        }
    )
    try:
        consumer.assign([TopicPartition(secure.raw, 0, 0)])
        # librdkafka may look up the group's coordinator first: refused too (no group ACL), but the
        # point is the fetch of the raw topic itself
        values, errors = _poll_until(consumer, 1, timeout=30, ignore=frozenset({KafkaError.GROUP_AUTHORIZATION_FAILED}))
    finally:
        consumer.close()
    assert values == [] and [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors
    assert "Not authorized" in errors[0].str() or "authorization" in errors[0].str().lower()

    reports: list[KafkaError | None] = []
    writer = Producer(
        {
            "bootstrap.servers": secure.bootstrap,
            "message.timeout.ms": 20_000,
            **client_security(secure.as_("streaming")).librdkafka(),
        }
    )
    writer.produce(secure.raw, b"x", on_delivery=lambda err, _msg: reports.append(err))
    writer.flush(30)
    assert len(reports) == 1 and reports[0] is not None
    assert reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_KAFKA")}
    return subprocess.run(
        [EVENTLAKE, *args], capture_output=True, text=True, env={**clean, **env}, timeout=180, check=False
    )


def test_wrong_password_is_one_clear_line_and_no_secret_reaches_the_logs(secure: Secure, tmp_path: Path) -> None:
    env = secure.env("producer", tmp_path)
    wrong = "wrong-" + uuid.uuid4().hex
    bad = {k: v for k, v in env.items() if k != "EVENTLAKE_KAFKA_SASL_PASSWORD_FILE"}
    started = time.monotonic()
    res = _cli("produce", "--source", SOURCE, "--count", "10", env={**bad, "EVENTLAKE_KAFKA_SASL_PASSWORD": wrong})
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert res.returncode == 1 and len(errors) == 1, res.stderr
    assert "Authentication failed" in errors[0] and "User:producer" in errors[0], errors[0]
    assert time.monotonic() - started < 60
    assert wrong not in res.stdout + res.stderr

    # The right password, DEBUG logs: the records go in and no password is printed anywhere.
    res = _cli("produce", "--source", SOURCE, "--count", "10", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["delivered"] == 10
    assert not [p for p in secure.passwords() if p in res.stdout + res.stderr]


def test_status_shows_the_principal_never_a_password(secure: Secure) -> None:
    env = {
        "EVENTLAKE_HOME": str(secure.settings.home),
        "EVENTLAKE_KAFKA_SECURE": "true",
        "EVENTLAKE_LOG_LEVEL": "DEBUG",
    }
    res = _cli("status", "--json", env=env)
    kafka = json.loads(res.stdout)["kafka"]
    assert kafka["ok"] and kafka["bootstrap"] == secure.bootstrap
    assert kafka["security"] == {
        "protocol": "SASL_SSL",
        "mechanism": "SCRAM-SHA-512",
        "principal": "User:admin",
        "ca_file": str(local_ca_file(secure.settings)),
    }
    assert not [p for p in secure.passwords() if p in res.stdout + res.stderr]


@pytest.mark.e2e
def test_spark_reads_and_writes_dlq_as_streaming_with_no_password_in_its_plan(secure: Secure, spark: Any) -> None:
    from pyspark.sql import functions as F  # noqa: PLC0415 - pyspark is slow to import

    from eventlake.streaming.pipeline import kafka_stream  # noqa: PLC0415
    from eventlake.streaming.sinks.dlq import DeadLetters  # noqa: PLC0415

    streaming = secure.as_("streaming")
    password = secure.password("streaming")
    stream = kafka_stream(spark, streaming, SOURCE, secure.bootstrap)
    name = f"secure_{uuid.uuid4().hex[:6]}"
    query = stream.writeStream.format("memory").queryName(name).trigger(availableNow=True).start()
    try:
        query.awaitTermination(180)
        assert query.exception() is None
        # the logical plan, the executed query's plans, its progress (what eventlake logs and stores)
        plans = [stream._jdf.queryExecution().toString(), query._jsq.explainInternal(True), str(query.lastProgress)]
        assert "SASL_SSL" in plans[0] and "(redacted)" in plans[0]  # the options are there, the JAAS config masked
    finally:
        query.stop()
    rows = spark.sql(f"SELECT topic, partition, offset, key, value FROM {name}")
    assert rows.count() >= N
    assert not [p for p in plans if password in p]

    # The DLQ sink: Spark's Kafka writer with the same identity.
    dlq = DeadLetters(secure.bootstrap, streaming.topics.dlq(SOURCE), client_security(streaming))
    bad = rows.limit(5).withColumn("reason", F.lit("test"))
    dlq.write(bad, 0)
    # streaming may write DLQ topics, not read them: the admin checks what arrived
    admin = admin_security(secure.settings)
    check = Consumer({"bootstrap.servers": secure.bootstrap, "group.id": "eventlake-dlq-check", **admin.librdkafka()})
    try:
        parts = check.list_topics(streaming.topics.dlq(SOURCE), timeout=10).topics[streaming.topics.dlq(SOURCE)]
        check.assign([TopicPartition(streaming.topics.dlq(SOURCE), p, 0) for p in parts.partitions])
        values, errors = _poll_until(check, 5)
    finally:
        check.close()
    assert errors == [] and len(values) == 5


@pytest.mark.e2e
def test_connect_worker_runs_as_the_connect_principal(secure: Secure, make_settings: MakeSettings) -> None:
    settings = make_settings("connect-secure", kafka=secure.kafka("connect"), connect={"enabled": True})
    service = ConnectService(settings)
    service.start()
    try:
        url = service.endpoint()
        assert url is not None and service.check().ok
        assert httpx.get(f"{url}/connectors", timeout=10).json() == []
        admin = admin_client(secure.bootstrap, admin_security(secure.settings))
        internal = {"_connect-configs", "_connect-offsets", "_connect-status"}
        # The worker creates them as its principal; the admin's metadata may show them a moment after
        # its REST API answers (seen once in CI: `_connect-configs` not listed yet).
        assert wait_until(lambda: internal <= set(admin.list_topics(timeout=10).topics), 30), internal
        worker = (service.dir / "worker.properties").read_text()
        assert "SASL_SSL" in worker and secure.password("connect") not in worker
        assert secure.password("connect") not in (service.dir / "connect.log").read_text()
    finally:
        assert service.stop()


def test_a_restarted_secure_broker_keeps_its_certificates_passwords_and_acls(make_settings: MakeSettings) -> None:
    settings = make_settings("secure-restart", kafka={"secure": True})
    service = KafkaService(settings)
    first = service.start()
    try:
        files = [
            local_password_file(settings, "producer"),
            settings.kafka_tls_dir / "broker.pem",
            local_ca_file(settings),
        ]
        before = [f.read_bytes() for f in files]
        assert service.stop()
        again = service.start()
        assert again.endpoint == first.endpoint and [f.read_bytes() for f in files] == before
        producer = make_settings(
            "restart-producer",
            kafka={
                "bootstrap": again.endpoint,
                "security_protocol": "SASL_SSL",
                "sasl_username": "producer",
                "sasl_password_file": str(files[0]),
                "ssl_ca_file": str(files[2]),
            },
        )
        assert kafka_health(again.endpoint, 10, client_security(producer)).ok
        # the admin's ACLs are in the metadata log: the producer still may not read
        admin = admin_client(again.endpoint, admin_security(settings))
        provision_topics(admin, {settings.topics.raw(SOURCE): settings.topics.raw_spec}, 1)
        consumer = Consumer(
            {
                "bootstrap.servers": again.endpoint,
                "group.id": "eventlake-restart",
                "enable.auto.commit": False,
                **client_security(producer).librdkafka(),
            }
        )
        try:
            consumer.assign([TopicPartition(settings.topics.raw(SOURCE), 0, 0)])
            _, errors = _poll_until(consumer, 1, timeout=30, ignore=frozenset({KafkaError.GROUP_AUTHORIZATION_FAILED}))
        finally:
            consumer.close()
        assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    finally:
        service.stop()
