"""Who may do what on a secured cluster: the platform's ACLs and SCRAM users (run as the admin).

The model (docs/reliability.md, "Security model"):

==============  ===========================================================================
principal       allowed
==============  ===========================================================================
admin           everything (``super.users``): topics, ACLs, SCRAM users
producer        WRITE, DESCRIBE on ``raw.<source>``; IDEMPOTENT_WRITE on the cluster. Not READ.
streaming       READ, DESCRIBE on ``raw.<source>``; WRITE, DESCRIBE on ``dlq.<source>`` and the
                alerts topic; READ on groups ``eventlake-*`` and ``spark-kafka-source-*``;
                IDEMPOTENT_WRITE on the cluster
connect         everything on topics ``_connect-*`` and group ``eventlake-connect``;
                DESCRIBE, IDEMPOTENT_WRITE on the cluster
==============  ===========================================================================

Anything not allowed is denied (the StandardAuthorizer with ``allow.everyone.if.no.acl.found=false``).
Creating an ACL that exists is a no-op, so :func:`apply_acls` is idempotent.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from pydantic import SecretStr

from eventlake.config import ScramMechanism as MechanismName
from eventlake.config import Settings
from eventlake.errors import EventlakeError

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
CLUSTER = "kafka-cluster"
#: the consumer groups of eventlake's own clients (serving path, lag probe) and of Spark's Kafka source
STREAMING_GROUP_PREFIXES = ("eventlake-", "spark-kafka-source-")
CONNECT_TOPIC_PREFIX = "_connect-"
CONNECT_GROUP = "eventlake-connect"
SCRAM_ITERATIONS = 8192
_MECHANISMS = {"SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512, "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256}


def _allow(
    principal: str,
    resource: ResourceType,
    name: str,
    operation: AclOperation,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
) -> AclBinding:
    return AclBinding(resource, name, pattern, f"User:{principal}", "*", operation, AclPermissionType.ALLOW)


def platform_acls(settings: Settings) -> list[AclBinding]:
    """The ACLs of the table above, for the configured principals and topics."""
    who, topics = settings.kafka.principals, settings.topics
    topic, group, cluster = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER
    prefixed = ResourcePatternType.PREFIXED
    out: list[AclBinding] = []
    for source in topics.sources:
        raw, dlq = topics.raw(source), topics.dlq(source)
        out += [_allow(who.producer, topic, raw, op) for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]
        out += [_allow(who.streaming, topic, raw, op) for op in (AclOperation.READ, AclOperation.DESCRIBE)]
        out += [_allow(who.streaming, topic, dlq, op) for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]
    out += [_allow(who.streaming, topic, topics.alerts, op) for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]
    out += [_allow(who.streaming, group, p, AclOperation.READ, prefixed) for p in STREAMING_GROUP_PREFIXES]
    out += [_allow(p, cluster, CLUSTER, AclOperation.IDEMPOTENT_WRITE) for p in (who.producer, who.streaming)]
    out += [
        _allow(who.connect, topic, CONNECT_TOPIC_PREFIX, AclOperation.ALL, prefixed),
        _allow(who.connect, group, CONNECT_GROUP, AclOperation.ALL),
        _allow(who.connect, cluster, CLUSTER, AclOperation.DESCRIBE),
        _allow(who.connect, cluster, CLUSTER, AclOperation.IDEMPOTENT_WRITE),
    ]
    return out


def apply_acls(admin: AdminClient, bindings: list[AclBinding]) -> None:
    """Create ``bindings`` (those that exist are left as they are)."""
    for binding, future in admin.create_acls(bindings, request_timeout=TIMEOUT_S).items():
        try:
            future.result(timeout=TIMEOUT_S)
        except KafkaException as err:
            raise EventlakeError(
                f"creating ACL {binding.principal} {binding.operation} {binding.restype} "
                f"{binding.name} failed: {err.args[0].str()}",
                "the ACLs are created as the admin principal (a super user)",
            ) from err
    log.info("kafka ACLs in place", extra={"acls": len(bindings)})


def upsert_scram_users(admin: AdminClient, users: dict[str, SecretStr], mechanism: MechanismName) -> None:
    """Create or update the SCRAM credential of each user (``users``: name -> password)."""
    info = ScramCredentialInfo(_MECHANISMS[mechanism], SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(name, info, pw.get_secret_value().encode()) for name, pw in users.items()
    ]
    for name, future in admin.alter_user_scram_credentials(upserts, request_timeout=TIMEOUT_S).items():
        try:
            future.result(timeout=TIMEOUT_S)
        except KafkaException as err:
            raise EventlakeError(f"setting the SCRAM credential of {name} failed: {err.args[0].str()}") from err
    log.info("kafka SCRAM users in place", extra={"users": sorted(users), "mechanism": mechanism})
