"""Apache Kafka, single combined broker+controller node in KRaft mode.

The real broker from Maven Central (``org.apache.kafka:kafka_2.13``), run as
``java -cp <jars> kafka.Kafka server.properties``. The data dir is formatted once with
``kafka.tools.StorageTool``; later starts recover whatever is in it (after a kill -9 too).
Internal topics (offsets, transaction state) use replication factor 1 and min ISR 1 so that
idempotent and transactional producers work on one node.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import subprocess
import uuid
from pathlib import Path

from eventlake.endpoints import Health
from eventlake.errors import CorruptDataError, ServiceError
from eventlake.jvm import classpath, find_java
from eventlake.kafka.admin import kafka_health
from eventlake.net import choose_port, port_accepts
from eventlake.services.base import Service, ServiceState
from eventlake.services.process import spawn, tail, terminate, wait_until

log = logging.getLogger(__name__)

NODE_ID = 1
LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="file" fileName="{logs}/server.log" filePattern="{logs}/server.log.%i">
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


class KafkaService(Service):
    name = "kafka"
    status_key = "kafka"
    endpoint_key = "bootstrap"

    def external_endpoint(self) -> str | None:
        return self.settings.kafka.bootstrap

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    def check(self) -> Health:
        endpoint = self.endpoint()
        if endpoint is None:
            return Health(False, "not started")
        return kafka_health(endpoint)

    # -- start -------------------------------------------------------------------------------
    def _launch(self) -> ServiceState:
        cfg = self.settings.kafka
        java = find_java(self.settings)
        cp = os.pathsep.join(str(j) for j in classpath(self.settings, "kafka"))
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
        props = self._write_config(port, cport)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log4j = self.dir / "log4j2.xml"
        log4j.write_text(LOG4J2_XML.format(logs=self.logs_dir))
        jvm_opts = [
            f"-Xmx{cfg.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.logs_dir}",
        ]
        self._format_if_new(str(java.path), cp, props, jvm_opts)

        out = self.dir / "kafka.out"
        ref = spawn([str(java.path), *jvm_opts, "-cp", cp, "kafka.Kafka", str(props)], out)
        bootstrap = f"{cfg.host}:{port}"

        def died() -> str | None:
            return None if ref.alive() else "exited"

        ready = wait_until(
            lambda: port_accepts(cfg.host, port) and kafka_health(bootstrap, 3).ok,
            timeout=cfg.start_timeout_s,
            interval=0.5,
            abort=died,
        )
        if not ready:
            terminate(ref)
            reason = self._startup_error(out) or ("process exited" if not ref.alive() else "timed out")
            raise ServiceError(
                f"Kafka broker failed to start: {reason}",
                f"see {self.logs_dir / 'server.log'} and {out}",
            )
        return ServiceState(
            name=self.name,
            endpoint=bootstrap,
            ports={"broker": port, "controller": cport},
            log=str(self.logs_dir / "server.log"),
            host=cfg.host,
            pid=ref.pid,
            create_time=ref.create_time,
        )

    def _write_config(self, port: int, cport: int) -> Path:
        cfg = self.settings.kafka
        h = cfg.host
        props = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@{h}:{cport}",
            "listeners": f"PLAINTEXT://{h}:{port},CONTROLLER://{h}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{h}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(cfg.default_partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Topics are provisioned from config (`eventlake topics create`), never by a typo.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
        }
        path = self.dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _format_if_new(self, java: str, cp: str, props: Path, jvm_opts: list[str]) -> None:
        meta = self.data_dir / "meta.properties"
        if meta.exists():
            self._validate_meta(meta)
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise CorruptDataError(
                f"Kafka data dir {self.data_dir} has data but no meta.properties",
                f"restore it from a backup, or delete {self.data_dir} to start empty (loses all messages)",
            )
        cluster_id = new_cluster_id()
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
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise ServiceError(f"formatting the Kafka data dir failed: {last}", f"see {self.dir}")
        log.info("formatted kafka storage", extra={"cluster_id": cluster_id, "dir": str(self.data_dir)})

    def _validate_meta(self, meta: Path) -> None:
        try:
            text = meta.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise CorruptDataError(
                f"Kafka data dir {self.data_dir} is corrupt: cannot read meta.properties ({err})",
                f"restore it from a backup, or delete {self.data_dir} to start empty (loses all messages)",
            ) from err
        keys = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
        if keys.get("node.id") != str(NODE_ID) or not keys.get("cluster.id"):
            raise CorruptDataError(
                f"Kafka data dir {self.data_dir} is corrupt: meta.properties has no valid cluster.id/node.id",
                f"restore it from a backup, or delete {self.data_dir} to start empty (loses all messages)",
            )

    def _startup_error(self, out: Path) -> str | None:
        """The most telling line of a failed start, from the broker's own output."""
        lines = tail(out) + tail(self.logs_dir / "server.log")
        for pattern in (r"Address already in use", r"ERROR .*", r"Exception.*"):
            for line in reversed(lines):
                if re.search(pattern, line):
                    return line.strip()[:300]
        return None
