"""Topic provisioning from config: create what is missing, grow partitions, report drift.

Idempotent: a topic whose settings match is left alone. Partitions can be increased, never
decreased (Kafka cannot, and re-keying would break per-key ordering); any other difference
between config and broker is reported, not silently altered.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from eventlake.config import TopicSpec
from eventlake.endpoints import Health
from eventlake.errors import EventlakeError
from eventlake.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)


def admin_client(bootstrap: str, security: KafkaSecurity = PLAINTEXT, **extra: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **security.librdkafka(), **extra})


#: client errors that no retry cures: the answer to a health check is then this error, not a timeout
_FATAL_CONNECT_ERRORS = {KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED}


def kafka_health(bootstrap: str, timeout: float = 5.0, security: KafkaSecurity = PLAINTEXT) -> Health:
    """Does the cluster answer a metadata request? A failed TLS handshake or SASL login is named as
    such (librdkafka reports it to the error callback, then times the request out)."""
    seen: list[KafkaError] = []
    admin = admin_client(bootstrap, security, **{"socket.timeout.ms": int(timeout * 1000), "error_cb": seen.append})
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as err:
        admin.poll(0)  # serves the error callbacks queued meanwhile (list_topics does not)
        fatal = next((e for e in seen if e.code() in _FATAL_CONNECT_ERRORS), None)
        if fatal is not None:
            who = security.describe().get("principal")
            return Health(False, f"cannot connect to {bootstrap}{f' as {who}' if who else ''}: {fatal.str()}")
        return Health(False, f"no answer from {bootstrap}: {err.args[0]}")
    return Health(True, f"{len(md.brokers)} broker(s), {len(md.topics)} topic(s)")


Action = Literal["created", "unchanged", "partitions_increased", "mismatch"]
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TopicResult:
    topic: str
    action: Action
    partitions: int
    detail: str = ""


def _existing_partitions(admin: AdminClient) -> dict[str, int]:
    md = admin.list_topics(timeout=TIMEOUT_S)
    return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}


def _config_drift(admin: AdminClient, topic: str, spec: TopicSpec) -> list[str]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    return [
        f"{key}={entries[key].value} (config says {want})"
        for key, want in spec.configs().items()
        if key in entries and entries[key].value != want
    ]


def _await_metadata(admin: AdminClient, want: dict[str, int]) -> None:
    """Wait until the broker's metadata shows ``want`` (topic -> partitions).

    The controller acknowledges a creation (or a partition increase) before every broker's
    metadata cache has it: a client that lists or produces right after "created" could see
    the topic as unknown.
    """
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        have = _existing_partitions(admin)
        lagging = sorted(n for n, p in want.items() if have.get(n, 0) < p)
        if not lagging:
            return
        if time.monotonic() > deadline:
            raise EventlakeError(f"topics not in the broker's metadata {TIMEOUT_S:.0f} s after the change: {lagging}")
        time.sleep(0.1)


def provision_topics(admin: AdminClient, specs: dict[str, TopicSpec], default_rf: int) -> list[TopicResult]:
    """Bring the broker's topics in line with ``specs``; one result per topic, in name order."""
    try:
        existing = _existing_partitions(admin)
    except KafkaException as err:
        raise EventlakeError(f"cannot list topics: {err.args[0]}", "is Kafka running? see `eventlake status`") from err
    results: list[TopicResult] = []
    changed: dict[str, int] = {}  # topic -> partitions the metadata must show before we return
    missing = [name for name in sorted(specs) if name not in existing]
    if missing:
        new = [
            NewTopic(
                name,
                num_partitions=specs[name].partitions,
                replication_factor=specs[name].replication_factor or default_rf,
                config=specs[name].configs(),
            )
            for name in missing
        ]
        for name, future in admin.create_topics(new, operation_timeout=TIMEOUT_S).items():
            try:
                future.result(timeout=TIMEOUT_S)
            except KafkaException as err:
                raise EventlakeError(f"creating topic {name} failed: {err.args[0].str()}") from err
            log.info("topic created", extra={"topic": name, "partitions": specs[name].partitions})
            results.append(TopicResult(name, "created", specs[name].partitions))
            changed[name] = specs[name].partitions

    for name in sorted(set(specs) - set(missing)):
        spec, have = specs[name], existing[name]
        drift = _config_drift(admin, name, spec)
        if have < spec.partitions:
            future = admin.create_partitions([NewPartitions(name, spec.partitions)])[name]
            future.result(timeout=TIMEOUT_S)
            results.append(TopicResult(name, "partitions_increased", spec.partitions, f"{have} -> {spec.partitions}"))
            changed[name] = spec.partitions
            continue
        if have > spec.partitions:
            drift.insert(0, f"has {have} partitions, config says {spec.partitions} (never decreased)")
        if drift:
            log.warning("topic settings differ from config", extra={"topic": name, "drift": drift})
            results.append(TopicResult(name, "mismatch", have, "; ".join(drift)))
        else:
            results.append(TopicResult(name, "unchanged", have))
    _await_metadata(admin, changed)
    return sorted(results, key=lambda r: r.topic)
