"""Kafka Connect worker in distributed mode (Apache Kafka's own runtime, same jars as the broker).

Off by default (``EVENTLAKE_CONNECT_ENABLED=true`` turns it on). Its config, offset and status
topics are compacted, replication factor 1, created by the worker itself.
"""

from __future__ import annotations

import os

import httpx

from eventlake.endpoints import Health
from eventlake.errors import ServiceError, UnreachableError
from eventlake.jvm import classpath, find_java
from eventlake.kafka.security import AUTOMATIC_PROVIDERS_PROPERTY, CONNECT_ENV_PROVIDER, client_security
from eventlake.net import choose_port
from eventlake.services.base import Service, ServiceState
from eventlake.services.kafka import LOG4J2_XML, KafkaService
from eventlake.services.process import spawn, tail, terminate, wait_until


def connect_health(url: str) -> Health:
    try:
        resp = httpx.get(url, timeout=3)
        resp.raise_for_status()
        return Health(True, f"Kafka Connect {resp.json().get('version', '?')}")
    except (httpx.HTTPError, ValueError) as err:
        return Health(False, f"no answer from {url}: {err}")


class ConnectService(Service):
    name = "connect"
    status_key = "connect"

    def enabled(self) -> bool:
        return self.settings.connect.enabled or self.settings.connect.url is not None

    def external_endpoint(self) -> str | None:
        return self.settings.connect.url

    def check(self) -> Health:
        url = self.endpoint()
        return connect_health(url) if url else Health(False, "not started")

    def worker_config(self, bootstrap: str, port: int) -> tuple[dict[str, str], dict[str, str]]:
        """(``worker.properties``, extra environment) of the worker: the Kafka client security of
        this process for the worker's own clients and its connectors' (the password only in the
        environment, see :meth:`eventlake.kafka.security.KafkaSecurity.connect_worker`)."""
        cfg = self.settings.connect
        security, env = client_security(self.settings).connect_worker()
        props = {
            "bootstrap.servers": bootstrap,
            "group.id": "eventlake-connect",
            "listeners": f"http://{cfg.host}:{port}",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "config.storage.topic": "_connect-configs",
            "offset.storage.topic": "_connect-offsets",
            "status.storage.topic": "_connect-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.flush.interval.ms": "5000",
            "plugin.path": str(self.dir / "plugins"),
            **security,
        }
        return props, env

    def _launch(self) -> ServiceState:
        cfg = self.settings.connect
        bootstrap = KafkaService(self.settings).endpoint()
        if bootstrap is None:
            raise UnreachableError("Kafka Connect needs Kafka, which is not running", "run `eventlake up`")
        java = find_java(self.settings)
        port = choose_port("connect", cfg.host, cfg.port, self.previous_port("rest"), "EVENTLAKE_CONNECT_PORT")
        props, env = self.worker_config(bootstrap, port)
        (self.dir / "plugins").mkdir(parents=True, exist_ok=True)
        worker = self.dir / "worker.properties"
        worker.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        cp = os.pathsep.join(str(j) for j in classpath(self.settings, "kafka"))
        out = self.dir / "connect.log"
        log4j = self.dir / "log4j2.xml"
        log4j.write_text(LOG4J2_XML.format(log=self.dir / "worker.log"))
        ref = spawn(
            [
                str(java.path),
                "-Xmx512m",
                f"-Dlog4j2.configurationFile={log4j}",
                # the only config provider the worker may instantiate: the one that reads its password
                *([f"-D{AUTOMATIC_PROVIDERS_PROPERTY}={CONNECT_ENV_PROVIDER}"] if env else []),
                "-cp",
                cp,
                "org.apache.kafka.connect.cli.ConnectDistributed",
                str(worker),
            ],
            out,
            env={**os.environ, **env} if env else None,
        )
        url = f"http://{cfg.host}:{port}"
        if not wait_until(
            lambda: connect_health(url).ok,
            timeout=120,
            interval=1,
            abort=lambda: None if ref.alive() else "exited",
        ):
            terminate(ref)
            reason = next((ln for ln in reversed(tail(out)) if "ERROR" in ln), "timed out")
            raise ServiceError(
                f"Kafka Connect failed to start: {reason.strip()[:300]}", f"see {out} and {self.dir / 'worker.log'}"
            )
        return ServiceState(
            name=self.name,
            endpoint=url,
            ports={"rest": port},
            log=str(out),
            host=cfg.host,
            pid=ref.pid,
            create_time=ref.create_time,
        )
