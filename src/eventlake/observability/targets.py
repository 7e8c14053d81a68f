"""Prometheus scrape targets of the local stack, from the process records in ``<home>/run``.

Every eventlake process that serves ``/metrics`` records where in ``<home>/run/<name>.json``: the
managed services (registry, dashboard) through ``Service.save_state``, the streaming, serving and
producer processes through ``observability.server.serve``. Prometheus reads one file-based service
discovery file per scrape job, ``<home>/prometheus/targets/<job>.json``, and watches the folder, so a
process that starts after Prometheus is scraped from its next refresh, without a restart.

Which records are targets: those with a pid. A process stopped on purpose leaves none (``serve``
deletes its record, ``Service.stop`` clears the pid), so its target disappears with it; a process
that crashed (kill -9, OOM) keeps its record and stays a target, so that ``up == 0`` shows it and
alerts on it until it is restarted (or its record is removed).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from eventlake.filelock import exclusive

log = logging.getLogger(__name__)

#: record name in ``<home>/run`` -> scrape job; the job names of config/prometheus/prometheus.yml
METRICS_JOBS: Mapping[str, str] = {
    "streaming": "eventlake-streaming",
    "serving": "eventlake-serving",
    "producer": "eventlake-producer",
    "schema_registry": "eventlake-registry",
    "dashboard": "eventlake-dashboard",
}
#: the path every eventlake process serves its metrics on
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class Target:
    """One ``/metrics`` endpoint: its job, ``host:port`` and the record it came from."""

    job: str
    address: str
    process: str


def targets_dir(home: Path) -> Path:
    """Where the discovery files live (Prometheus' generated config points here)."""
    return home / "prometheus" / "targets"


def target_file(home: Path, job: str) -> Path:
    return targets_dir(home) / f"{job}.json"


def _address(record: Mapping[str, object]) -> str | None:
    """``host:port`` of a record: ``url`` (``serve``) or ``endpoint`` (managed services)."""
    url = record.get("url") or record.get("endpoint")
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        return None
    return f"{parts.hostname}:{parts.port}"


def live_targets(home: Path) -> list[Target]:
    """Targets of the records in ``<home>/run`` that have a pid (running, or crashed)."""
    found: list[Target] = []
    for name, job in METRICS_JOBS.items():
        path = home / "run" / f"{name}.json"
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as err:
            # A torn write of a process being killed: the next rewrite after its restart fixes it.
            log.warning("skipping unreadable process record", extra={"file": str(path), "err": str(err)})
            continue
        if not isinstance(record, dict) or record.get("pid") is None:
            continue
        address = _address(record)
        if address is None:
            log.warning("process record has no usable URL", extra={"file": str(path)})
            continue
        found.append(Target(job=job, address=address, process=name))
    return found


def _write_atomic(path: Path, text: str) -> None:
    """Prometheus watches the folder: it must never read a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_targets(home: Path) -> list[Target]:
    """Rewrite every job's discovery file from the records now in ``<home>/run``; return the targets."""
    targets_dir(home).mkdir(parents=True, exist_ok=True)
    with exclusive(targets_dir(home) / ".lock"):  # one rewrite at a time; each reads every record
        targets = live_targets(home)
        for job in METRICS_JOBS.values():
            groups = [{"targets": [t.address], "labels": {"process": t.process}} for t in targets if t.job == job]
            content = json.dumps(groups, indent=2) + "\n"
            path = target_file(home, job)
            try:
                unchanged = path.read_text() == content
            except FileNotFoundError:
                unchanged = False
            if not unchanged:
                _write_atomic(path, content)
    return targets


def refresh_targets(home: Path) -> None:
    """After a process record changed: rewrite the discovery files if this home runs Prometheus.

    Called by every process that writes a record; a failure must not stop that process (it would
    only be scraped late), so it is logged with its cause and the process carries on."""
    if not targets_dir(home).is_dir():
        return  # the operations stack never ran here: nothing reads the files
    try:
        write_targets(home)
    except OSError as err:
        log.error(
            "could not rewrite Prometheus targets; new processes are scraped once it succeeds",
            extra={"dir": str(targets_dir(home)), "err": str(err)},
        )
