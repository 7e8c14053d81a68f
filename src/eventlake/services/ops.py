"""Prometheus and Alertmanager (Debian packages) as managed services: ``eventlake up --ops``.

They follow the contract of every managed service (``services.base``): 127.0.0.1 on a free port kept
across restarts, data and log under ``<home>/<name>``, a record in ``<home>/run/<name>.json``, ready
when ``/-/ready`` answers 200. Alertmanager starts first (Prometheus is configured with its address);
``down`` stops them in reverse. Their configs are generated at each start (``observability.opsconfig``)
so that a changed setting takes effect on the next ``up``; the scrape targets change without a restart.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence

import httpx

from eventlake.endpoints import Health
from eventlake.errors import ConfigError, ServiceError, UnreachableError
from eventlake.net import choose_port
from eventlake.observability.opsconfig import (
    alertmanager_config,
    channels,
    prometheus_config,
    redact,
    write_yaml,
)
from eventlake.observability.targets import write_targets
from eventlake.services.base import Service, ServiceState

#: readiness endpoint of both (200 once they serve)
READY_PATH = "/-/ready"
#: Debian package of each binary, for the hint when it is missing
PACKAGES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}

log = logging.getLogger(__name__)


def find_binary(service: str, candidates: Sequence[str]) -> str:
    """The first of ``candidates`` found (on PATH or as a path), or a ServiceError naming the package."""
    for name in candidates:
        found = shutil.which(name)
        if found is not None:
            return found
    package = PACKAGES[service]
    raise ServiceError(
        f"{service} is not installed (none of {', '.join(candidates)} found)",
        f"run `make system-deps` as root, or `apt-get install {package}`",
    )


def ready(url: str) -> Health:
    """Ready = ``/-/ready`` answers 200."""
    try:
        resp = httpx.get(f"{url}{READY_PATH}", timeout=5)
    except httpx.HTTPError as err:
        return Health(False, f"no answer from {url}: {err}")
    return Health(resp.status_code == 200, "ready" if resp.status_code == 200 else f"unready: {resp.text[:200]}")


def targets_summary(url: str) -> str:
    """``3 of 3 targets up``, naming the ones that are not (Prometheus' own view, /api/v1/targets)."""
    try:
        active = httpx.get(f"{url}/api/v1/targets", params={"state": "active"}, timeout=5).json()["data"][
            "activeTargets"
        ]
    except (httpx.HTTPError, ValueError, KeyError) as err:
        return f"targets unknown: {err}"
    down = [f"{t['labels'].get('job')} {t['labels'].get('instance')}" for t in active if t.get("health") != "up"]
    summary = f"{len(active) - len(down)} of {len(active)} targets up"
    return f"{summary} (not up: {', '.join(down)})" if down else summary


class _OpsService(Service):
    """What both share: on with ``ops.enabled`` (or while running, so that status and down see it)."""

    def enabled(self) -> bool:
        return self.settings.ops.enabled or self.running_process() is not None

    def external_endpoint(self) -> str | None:
        return None

    def check(self) -> Health:
        url = self.endpoint()
        return ready(url) if url else Health(False, "not started")

    def _spawn(self, argv: list[str], port: int) -> ServiceState:
        try:
            return self.spawn_and_wait(
                argv,
                host=self.settings.ops.host,
                port=port,
                env=dict(os.environ),
                log_name=f"{self.name}.log",
                ready=ready,
                timeout=self.settings.ops.start_timeout_s,
            )
        except ServiceError as err:
            # the reason is a line of the tool's log, which may quote its config
            raise ServiceError(redact(err.message, self.settings), err.hint) from None


class AlertmanagerService(_OpsService):
    name = "alertmanager"
    status_key = "alertmanager"

    def check(self) -> Health:
        health = super().check()
        if not health.ok:
            return health
        delivers = channels(self.settings)
        return Health(True, f"ready; delivers to {', '.join(delivers) if delivers else 'no channel (UI only)'}")

    def _launch(self) -> ServiceState:
        ops = self.settings.ops
        exe = find_binary(self.name, ops.alertmanager_bin)
        config = self.dir / "alertmanager.yml"
        write_yaml(config, alertmanager_config(self.settings), private=True)
        if not channels(self.settings):
            log.warning(
                "Alertmanager has no delivery channel; alerts show in its UI only",
                extra={"hint": "set EVENTLAKE_SLACK_WEBHOOK_URL, or EVENTLAKE_SMTP_HOST and EVENTLAKE_ALERT_EMAIL_TO"},
            )
        port = choose_port(
            self.name, ops.host, ops.alertmanager_port, self.previous_port("http"), "EVENTLAKE_OPS_ALERTMANAGER_PORT"
        )
        argv = [
            exe,
            f"--config.file={config}",
            f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address={ops.host}:{port}",
            "--cluster.listen-address=",  # one local instance: no gossip port on 0.0.0.0:9094
            "--log.format=json",
        ]
        return self._spawn(argv, port)


class PrometheusService(_OpsService):
    name = "prometheus"
    status_key = "prometheus"

    def check(self) -> Health:
        health = super().check()
        url = self.endpoint()
        if not health.ok or url is None:
            return health
        return Health(True, f"ready; {targets_summary(url)}")

    def _launch(self) -> ServiceState:
        ops = self.settings.ops
        exe = find_binary(self.name, (ops.prometheus_bin,))
        for rules in (ops.rules_file, *ops.extra_rules_files):
            if not rules.is_file():
                raise ConfigError(f"Prometheus rules file {rules} does not exist", "set EVENTLAKE_OPS_RULES_FILE")
        alertmanager = AlertmanagerService(self.settings).endpoint()
        if alertmanager is None:
            raise UnreachableError(
                "Prometheus sends its alerts to Alertmanager, which is not running", "run `eventlake up --ops`"
            )
        write_targets(self.settings.home)  # before the first scrape: what runs already
        config = self.dir / "prometheus.yml"
        write_yaml(config, prometheus_config(self.settings, alertmanager.removeprefix("http://")))
        port = choose_port(
            self.name, ops.host, ops.prometheus_port, self.previous_port("http"), "EVENTLAKE_OPS_PROMETHEUS_PORT"
        )
        argv = [
            exe,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--storage.tsdb.retention.time={ops.retention}",
            f"--web.listen-address={ops.host}:{port}",
            "--log.format=json",
        ]
        return self._spawn(argv, port)
