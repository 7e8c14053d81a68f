"""Apache Kafka in KRaft mode: the stack's single combined broker+controller node, or a cluster of them.

The real broker from Maven Central (``org.apache.kafka:kafka_2.13``), run as
``java -cp <jars> kafka.Kafka server.properties``. The data dir is formatted once with
``kafka.tools.StorageTool``; later starts recover whatever is in it (after a kill -9 too).

On one node (``eventlake up``) internal topics (offsets, transaction state) use replication factor 1
and min ISR 1 so that idempotent and transactional producers work at all. :class:`KafkaCluster` runs
N such nodes on loopback as one static controller quorum, with internal and new topics replicated N
times and min ISR ``min_isr``: a cluster that keeps accepting ``acks=all`` writes with one node gone.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from eventlake.config import Settings
from eventlake.endpoints import Health
from eventlake.errors import ConfigError, CorruptDataError, ServiceError
from eventlake.jvm import classpath, find_java
from eventlake.kafka.acls import apply_acls, platform_acls, upsert_scram_users
from eventlake.kafka.admin import admin_client, kafka_health
from eventlake.kafka.security import (
    PLAINTEXT,
    KafkaSecurity,
    admin_security,
    client_security,
    local_password_file,
    read_password_file,
)
from eventlake.logs import redact
from eventlake.net import choose_port, free_port, port_accepts, port_is_free
from eventlake.services.base import Service, ServiceState
from eventlake.services.certs import BrokerTls, make_broker_tls, write_private
from eventlake.services.process import spawn, tail, terminate, wait_until

log = logging.getLogger(__name__)

NODE_ID = 1  # the stack's single node
#: the JVM's log4j2 configuration (broker, Connect worker): INFO to a rolling file, errors to stderr
LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="file" fileName="{log}" filePattern="{log}.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
    <Console name="stderr" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <ThresholdFilter level="ERROR"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
"""


def new_cluster_id() -> str:
    """A Kafka cluster id: URL-safe base64 of a random UUID, unpadded (what Uuid.randomUuid prints).

    Like Kafka's own Uuid.randomUuid, never one starting with "-": command-line parsers (the storage
    tool's among them) would read it as an option.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


@dataclass(frozen=True)
class KafkaNode:
    """Where one node of a cluster sits in it: its id and ports, and what every node shares."""

    node_id: int
    port: int
    controller_port: int
    #: ``controller.quorum.voters`` of the whole cluster (``id@host:controller_port,...``)
    voters: str
    #: replication factor of internal topics and of topics created without one
    replication: int
    #: ``min.insync.replicas`` of those topics (and the transaction log's min ISR)
    min_isr: int
    #: every node of a cluster is formatted with the same cluster id
    cluster_id: str


class KafkaService(Service):
    """The stack's Kafka node (``node`` None), or one node of a :class:`KafkaCluster`."""

    name = "kafka"
    status_key = "kafka"
    endpoint_key = "bootstrap"

    def __init__(self, settings: Settings, node: KafkaNode | None = None) -> None:
        super().__init__(settings)
        self.node = node

    @property
    def node_id(self) -> int:
        return self.node.node_id if self.node is not None else NODE_ID

    @property
    def label(self) -> str:
        """``kafka``, or ``kafka-<id>`` for a cluster node: its directory and state record."""
        return self.name if self.node is None else f"{self.name}-{self.node.node_id}"

    @property
    def dir(self) -> Path:
        return self.settings.home / self.label

    @property
    def state_file(self) -> Path:
        return self.settings.home / "run" / f"{self.label}.json"

    def external_endpoint(self) -> str | None:
        # A cluster node is always ours; the stack's node is external when a bootstrap is configured.
        return self.settings.kafka.bootstrap if self.node is None else None

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def secure(self) -> bool:
        """The stack's node serves SASL_SSL only, with ACLs (``kafka.secure``); cluster nodes never do."""
        return self.node is None and self.settings.kafka.secure

    def check(self) -> Health:
        endpoint = self.endpoint()
        if endpoint is None:
            return Health(False, "not started")
        try:
            security = client_security(self.settings)
        except ConfigError as err:  # e.g. a password file that is not there (yet)
            return Health(False, err.message)
        return kafka_health(endpoint, security=security)

    def status(self) -> dict[str, Any]:
        """The status entry, with how clients of this process authenticate (never the password)."""
        entry = super().status()
        try:
            entry["security"] = client_security(self.settings).describe()
        except ConfigError as err:  # e.g. the password file is not there yet
            entry["security"] = {"error": err.message}
        return entry

    # -- start -------------------------------------------------------------------------------
    def _single_node(self) -> KafkaNode:
        """The stack's node: its own one-voter quorum, replication 1 (a new cluster id if formatted now)."""
        cfg = self.settings.kafka
        port = choose_port("kafka", cfg.host, cfg.port, self.previous_port("broker"), "EVENTLAKE_KAFKA_PORT")
        cport = choose_port(
            "kafka controller",
            cfg.host,
            cfg.controller_port,
            self.previous_port("controller"),
            "EVENTLAKE_KAFKA_CONTROLLER_PORT",
        )
        if cport == port:
            cport = choose_port("kafka controller", cfg.host, 0, None, "EVENTLAKE_KAFKA_CONTROLLER_PORT")
        return KafkaNode(NODE_ID, port, cport, f"{NODE_ID}@{cfg.host}:{cport}", 1, 1, new_cluster_id())

    def _launch(self) -> ServiceState:
        cfg = self.settings.kafka
        java = find_java(self.settings)
        cp = os.pathsep.join(str(j) for j in classpath(self.settings, "kafka"))
        node = self.node or self._single_node()
        port, cport = node.port, node.controller_port
        props = self._write_config(node)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log4j = self.dir / "log4j2.xml"
        log4j.write_text(LOG4J2_XML.format(log=self.logs_dir / "server.log"))
        jvm_opts = [
            f"-Xmx{cfg.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.logs_dir}",
        ]
        self._format_if_new(str(java.path), cp, props, jvm_opts, node.cluster_id)

        out = self.dir / "kafka.out"
        ref = spawn([str(java.path), *jvm_opts, "-cp", cp, "kafka.Kafka", str(props)], out)
        bootstrap = f"{cfg.host}:{port}"
        security = admin_security(self.settings) if self.secure else PLAINTEXT

        def died() -> str | None:
            return None if ref.alive() else "exited"

        ready = wait_until(
            lambda: port_accepts(cfg.host, port) and kafka_health(bootstrap, 3, security).ok,
            timeout=cfg.start_timeout_s,
            interval=0.5,
            abort=died,
        )
        if not ready:
            terminate(ref)
            reason = self._startup_error(out) or ("process exited" if not ref.alive() else "timed out")
            raise ServiceError(
                f"Kafka broker{'' if self.node is None else f' {self.node.node_id}'} failed to start: {reason}",
                f"see {self.logs_dir / 'server.log'} and {out}",
            )
        if self.secure:
            try:
                self._provision_security(bootstrap, security)
            except BaseException:
                terminate(ref)
                raise
        return ServiceState(
            name=self.name,
            endpoint=bootstrap,
            ports={"broker": port, "controller": cport},
            log=str(self.logs_dir / "server.log"),
            host=cfg.host,
            pid=ref.pid,
            create_time=ref.create_time,
        )

    # -- security (``kafka.secure``) ---------------------------------------------------------
    def _principals(self) -> list[str]:
        p = self.settings.kafka.principals
        return list(dict.fromkeys([p.admin, p.producer, p.streaming, p.connect]))

    def _ensure_secrets(self) -> BrokerTls:
        """The broker's certificates and one generated password per principal (kept across restarts)."""
        tls = BrokerTls(self.settings.kafka_tls_dir)
        if not tls.exists():
            make_broker_tls(tls.dir, [self.settings.kafka.host, "localhost", "127.0.0.1"])
            log.info("made the kafka CA and broker certificate", extra={"dir": str(tls.dir)})
        assert self.settings.kafka.secrets_dir is not None
        self.settings.kafka.secrets_dir.mkdir(parents=True, exist_ok=True)
        self.settings.kafka.secrets_dir.chmod(0o700)
        for principal in self._principals():
            path = local_password_file(self.settings, principal)
            if not path.exists():
                write_private(path, secrets.token_urlsafe(24).encode())
        return tls

    def _password(self, principal: str) -> str:
        return read_password_file(local_password_file(self.settings, principal)).get_secret_value()

    def _secure_props(self, node: KafkaNode) -> dict[str, str]:
        """SASL_SSL for clients and the broker's own inter-broker client (as the admin), mutual TLS
        on the controller listener (the broker's certificate is its identity there: SCRAM cannot
        authenticate controllers, whose credentials live in the metadata they serve), and the
        StandardAuthorizer denying whatever no ACL allows."""
        cfg = self.settings.kafka
        tls = self._ensure_secrets()
        h, mech = cfg.host, cfg.sasl_mechanism
        jaas = KafkaSecurity("SASL_SSL", mech, cfg.principals.admin, SecretStr(self._password(cfg.principals.admin)))
        return {
            "listeners": f"SASL_SSL://{h}:{node.port},CONTROLLER://{h}:{node.controller_port}",
            "advertised.listeners": f"SASL_SSL://{h}:{node.port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "sasl.enabled.mechanisms": mech,
            "sasl.mechanism.inter.broker.protocol": mech,
            f"listener.name.sasl_ssl.{mech.lower()}.sasl.jaas.config": jaas.java()["sasl.jaas.config"],
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(tls.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(tls.ca_cert),
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{cfg.principals.admin};{tls.principal}",
        }

    def _scram_format_args(self) -> list[str]:
        """``--add-scram`` of the admin: the one credential that must exist before the broker runs
        (the other principals are created through the admin API once it does, off the command line)."""
        if not self.secure:
            return []
        admin, mech = self.settings.kafka.principals.admin, self.settings.kafka.sasl_mechanism
        return ["--add-scram", f"{mech}=[name={admin},password={self._password(admin)}]"]

    def _provision_security(self, bootstrap: str, security: KafkaSecurity) -> None:
        """SCRAM users of every principal but the admin, and the platform's ACLs (both idempotent)."""
        admin = admin_client(bootstrap, security)
        others = [p for p in self._principals() if p != self.settings.kafka.principals.admin]
        upsert_scram_users(admin, {p: SecretStr(self._password(p)) for p in others}, self.settings.kafka.sasl_mechanism)
        apply_acls(admin, platform_acls(self.settings))

    def _write_config(self, node: KafkaNode) -> Path:
        cfg = self.settings.kafka
        h, port, cport = cfg.host, node.port, node.controller_port
        rf, isr = str(node.replication), str(node.min_isr)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": node.voters,
            "listeners": f"PLAINTEXT://{h}:{port},CONTROLLER://{h}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{h}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(cfg.default_partitions),
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            # A replica that lost its data must never become leader: acks=all writes would vanish.
            "unclean.leader.election.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            # Topics are provisioned from config (`eventlake topics create`), never by a typo.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
        }
        if self.secure:
            props |= self._secure_props(node)
        path = self.dir / "server.properties"
        # 0600 from the first byte: a secure broker's file holds the admin's inter-broker password
        write_private(path, "".join(f"{k}={v}\n" for k, v in props.items()).encode())
        return path

    def _format_if_new(self, java: str, cp: str, props: Path, jvm_opts: list[str], cluster_id: str) -> None:
        meta = self.data_dir / "meta.properties"
        if meta.exists():
            self._validate_meta(meta)
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise CorruptDataError(
                f"Kafka data dir {self.data_dir} has data but no meta.properties",
                f"restore it from a backup, or delete {self.data_dir} to start empty (loses all messages)",
            )
        argv = [
            java,
            *jvm_opts,
            "-cp",
            cp,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(props),
            "--ignore-formatted",
            *self._scram_format_args(),
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            last = redact((proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1])
            raise ServiceError(f"formatting the Kafka data dir failed: {last}", f"see {self.dir}")
        log.info("formatted kafka storage", extra={"cluster_id": cluster_id, "dir": str(self.data_dir)})

    def formatted_cluster_id(self) -> str | None:
        """The cluster id this node's data dir was formatted with; None if it is not formatted yet."""
        meta = self.data_dir / "meta.properties"
        return self._read_meta(meta) if meta.exists() else None

    def _validate_meta(self, meta: Path) -> None:
        cluster_id = self._read_meta(meta)
        if self.node is not None and cluster_id != self.node.cluster_id:
            raise CorruptDataError(
                f"Kafka data dir {self.data_dir} belongs to cluster {cluster_id}, not {self.node.cluster_id}",
                f"delete {self.data_dir} to rejoin empty (the other replicas hold the data)",
            )

    def _read_meta(self, meta: Path) -> str:
        """The cluster id of a data dir formatted for this node id (else :class:`CorruptDataError`)."""
        try:
            text = meta.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise CorruptDataError(
                f"Kafka data dir {self.data_dir} is corrupt: cannot read meta.properties ({err})",
                f"restore it from a backup, or delete {self.data_dir} to start empty (loses all messages)",
            ) from err
        keys = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
        cluster_id = keys.get("cluster.id")
        if keys.get("node.id") != str(self.node_id) or not cluster_id:
            raise CorruptDataError(
                f"Kafka data dir {self.data_dir} is corrupt: meta.properties has no valid cluster.id/node.id",
                f"restore it from a backup, or delete {self.data_dir} to start empty (loses all messages)",
            )
        return cluster_id

    def _startup_error(self, out: Path) -> str | None:
        """The most telling line of a failed start, from the broker's own output."""
        lines = tail(out) + tail(self.logs_dir / "server.log")
        for pattern in (r"Address already in use", r"ERROR .*", r"Exception.*"):
            for line in reversed(lines):
                if re.search(pattern, line):
                    return line.strip()[:300]
        return None


class KafkaCluster:
    """``nodes`` combined broker+controller nodes on loopback: one static KRaft quorum of them all,
    internal and new topics replicated ``nodes`` times with min ISR ``min_isr``.

    Each node is a :class:`KafkaService` under ``<home>/kafka-<id>`` with its own state record, so one
    node can be stopped, killed and started again on its own ports and data while the others run.
    Ports are chosen up front for every node (each node's config names every controller), reusing
    what the records hold; the cluster id is the one the data dirs were formatted with, or a new one.
    """

    def __init__(self, settings: Settings, nodes: int = 3, min_isr: int = 2) -> None:
        if nodes < 1 or not 1 <= min_isr <= nodes:
            raise ValueError(f"a cluster of {nodes} node(s) cannot have min ISR {min_isr}")
        self.settings = settings
        host = settings.kafka.host
        # Nodes without a place yet: enough to read what each one's record and data dir hold.
        probes = [KafkaService(settings, KafkaNode(i, 0, 0, "", nodes, min_isr, "")) for i in range(1, nodes + 1)]
        found = {c for p in probes if (c := p.formatted_cluster_id()) is not None}
        if len(found) > 1:
            raise CorruptDataError(
                f"the Kafka data dirs under {settings.home} belong to different clusters: {sorted(found)}",
                "delete the data dirs of the nodes that should rejoin empty",
            )
        cluster_id = found.pop() if found else new_cluster_id()
        taken: set[int] = set()
        ports = [
            (self._port(host, p.previous_port("broker"), taken), self._port(host, p.previous_port("controller"), taken))
            for p in probes
        ]
        voters = ",".join(f"{i}@{host}:{c}" for i, (_, c) in enumerate(ports, start=1))
        #: every node's listener: clients that start while a node is down still find the others
        self.bootstrap = ",".join(f"{host}:{p}" for p, _ in ports)
        self.nodes = [
            KafkaService(settings, KafkaNode(i, p, c, voters, nodes, min_isr, cluster_id))
            for i, (p, c) in enumerate(ports, start=1)
        ]

    @staticmethod
    def _port(host: str, previous: int | None, taken: set[int]) -> int:
        """The port a node had (kept so clients and the quorum find it again), else a free one; never one
        another node of this cluster got."""
        port = previous if previous and previous not in taken and port_is_free(host, previous) else free_port(host)
        while port in taken:
            port = free_port(host)
        taken.add(port)
        return port

    def node(self, node_id: int) -> KafkaService:
        return self.nodes[node_id - 1]

    def start(self) -> None:
        """Start every node that is not running, together: no node answers before a quorum of
        controllers is up. On failure stop what this call started."""
        todo = [n for n in self.nodes if not n.is_running()]
        with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
            futures = [(n, pool.submit(n.start)) for n in todo]
        errors = [(n, err) for n, f in futures if (err := f.exception()) is not None]
        if errors:
            _stop_together(todo, 30.0)
            node, first = errors[0]
            log.error("kafka cluster failed to start", extra={"node": node.label, "error": str(first)})
            raise first
        health = kafka_health(self.bootstrap)
        log.info("kafka cluster up", extra={"bootstrap": self.bootstrap, "detail": health.detail})

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node, together: one by one, the last nodes would wait out ``timeout`` for a
        controller quorum to shut down under."""
        _stop_together(self.nodes, timeout)


def _stop_together(nodes: list[KafkaService], timeout: float) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        for future in [pool.submit(n.stop, timeout) for n in nodes]:
            future.result()
