"""The configuration files of the local operations stack, generated from the typed settings.

Nothing here is a second copy of the monitoring code: Prometheus evaluates the very rules file that
``config/prometheus/prometheus.yml`` loads, under the same job names; Alertmanager gets the route
tree, grouping and inhibitions of ``config/alertmanager/alertmanager.yml``. What the local stack adds
is where things are (targets from ``<home>/run``, 127.0.0.1 ports), its timings, and the receivers'
channels from the ``slack``/``smtp``/``alert`` settings. Those carry secrets (the webhook URL is a
credential, so is the SMTP password), so the Alertmanager file is written with mode 0600 and its
content is never logged; :func:`redact` scrubs them from any text shown to people.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from eventlake.config import Settings
from eventlake.errors import ConfigError
from eventlake.observability.targets import METRICS_JOBS, METRICS_PATH, target_file

log = logging.getLogger(__name__)

#: external label of every series and alert, as in config/prometheus/prometheus.yml
EXTERNAL_LABELS = {"project": "eventlake"}
#: Prometheus' default scrape timeout; never longer than the scrape interval
MAX_SCRAPE_TIMEOUT_S = 10.0
#: route keys the ``ops.*_s`` settings replace
TIMINGS = ("group_wait", "group_interval", "repeat_interval")
#: Slack message body: one line per alert, its summary annotation (every eventlake alert has one)
SLACK_TEXT = "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}"


def duration(seconds: float) -> str:
    """A Prometheus/Alertmanager duration: whole seconds as ``15s``, else milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def prometheus_config(settings: Settings, alertmanager: str) -> dict[str, Any]:
    """Prometheus' config: every eventlake job from its discovery file, the shared rules, alerts to
    Alertmanager at ``alertmanager`` (``host:port``)."""
    ops = settings.ops
    interval = duration(ops.scrape_interval_s)
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": duration(min(MAX_SCRAPE_TIMEOUT_S, ops.scrape_interval_s)),
            "evaluation_interval": duration(ops.evaluation_interval_s),
            "external_labels": dict(EXTERNAL_LABELS),
        },
        "rule_files": [str(p) for p in (ops.rules_file, *ops.extra_rules_files)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": METRICS_PATH,
                # the folder is watched; the interval is the fallback if a change notification is missed
                "file_sd_configs": [{"files": [str(target_file(settings.home, job))], "refresh_interval": interval}],
            }
            for job in METRICS_JOBS.values()
        ],
    }


def _slack(settings: Settings) -> dict[str, Any] | None:
    if settings.slack.webhook_url is None:
        return None
    url = settings.slack.webhook_url.get_secret_value()
    if urlsplit(url).scheme not in ("http", "https"):
        # said without the value: the URL is the credential
        raise ConfigError("slack.webhook_url is not an http(s) URL", "set EVENTLAKE_SLACK_WEBHOOK_URL to the webhook")
    return {
        "api_url": url,
        "send_resolved": True,
        "text": SLACK_TEXT,
    }


def _email(settings: Settings) -> dict[str, Any] | None:
    smtp, recipients = settings.smtp, settings.alert.recipients
    if smtp.host is None or not recipients:
        return None
    cfg: dict[str, Any] = {
        "to": ", ".join(recipients),
        "from": settings.alert.email_from,
        "smarthost": f"{smtp.host}:{smtp.port}",
        "require_tls": smtp.starttls,
        "send_resolved": True,
    }
    if smtp.user is not None:
        cfg["auth_username"] = smtp.user
        if smtp.password is not None:
            cfg["auth_password"] = smtp.password.get_secret_value()
    return cfg


def channels(settings: Settings) -> list[str]:
    """Which channels Alertmanager delivers to with these settings (for status and logs)."""
    return [name for name, cfg in (("slack", _slack(settings)), ("email", _email(settings))) if cfg is not None]


def _set_timings(route: dict[str, Any], timings: dict[str, str], *, root: bool) -> None:
    """The root route gets every timing; a child route keeps inheriting unless it sets its own."""
    for key, value in timings.items():
        if root or key in route:
            route[key] = value
    for child in route.get("routes", []) or []:
        _set_timings(child, timings, root=False)


def alertmanager_config(settings: Settings) -> dict[str, Any]:
    """Alertmanager's config: the shared routes, every receiver delivering to the settings' channels."""
    path = settings.ops.alertmanager_config
    try:
        base = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(
            f"cannot read Alertmanager's routes at {path}: {err.strerror}", "set EVENTLAKE_OPS_ALERTMANAGER_CONFIG"
        ) from err
    except yaml.YAMLError as err:
        raise ConfigError(
            f"{path} is not YAML: {err}", "fix the file or set EVENTLAKE_OPS_ALERTMANAGER_CONFIG"
        ) from err
    if not isinstance(base, dict) or not isinstance(base.get("route"), dict) or not base.get("receivers"):
        raise ConfigError(f"{path} has no route or no receivers", "start from config/alertmanager/alertmanager.yml")
    cfg = copy.deepcopy(base)
    slack, email = _slack(settings), _email(settings)
    for receiver in cfg["receivers"]:
        # Channels of the shared file point at deployment secrets (*_file); locally, the settings' channels.
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        if slack is not None:
            receiver["slack_configs"] = [dict(slack)]
        if email is not None:
            receiver["email_configs"] = [dict(email)]
    ops = settings.ops
    timings = {
        key: duration(value)
        for key, value in zip(TIMINGS, (ops.group_wait_s, ops.group_interval_s, ops.repeat_interval_s), strict=True)
        if value is not None
    }
    _set_timings(cfg["route"], timings, root=True)
    return cfg


def secrets(settings: Settings) -> list[str]:
    """Secret values that may appear in the generated Alertmanager file."""
    values = [s.get_secret_value() for s in (settings.slack.webhook_url, settings.smtp.password) if s is not None]
    return [v for v in values if v]


def redact(text: str, settings: Settings) -> str:
    """``text`` with every secret of the generated configs replaced by ``***``."""
    for value in secrets(settings):
        text = text.replace(value, "***")
    return text


def write_yaml(path: Path, content: dict[str, Any], *, private: bool = False) -> None:
    """Write ``content`` atomically; ``private``: mode 0600 from creation (never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(content, fh, sort_keys=False)
    os.replace(tmp, path)
