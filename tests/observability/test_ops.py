"""The operations stack for real (``eventlake up --ops``): Debian's ``prometheus`` and
``prometheus-alertmanager`` started by the stack, scraping the stack's own processes, with alerts
delivered to a real HTTP webhook receiver (Slack) and a real SMTP server (aiosmtpd).

A missing binary fails these tests (``make system-deps`` installs both packages); nothing skips.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from eventlake.config import Settings
from eventlake.errors import ServiceError
from eventlake.kafka.admin import admin_client, provision_topics
from eventlake.observability.opsconfig import alertmanager_config, prometheus_config, write_yaml
from eventlake.observability.targets import METRICS_JOBS, live_targets, write_targets
from eventlake.services import Stack
from eventlake.services.process import wait_until
from tests.alerting.receivers import Mailbox, Webhook, free_port, smtp_server
from tests.conftest import MakeSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_PROMETHEUS = REPO / "config" / "prometheus" / "prometheus.yml"
EVENTLAKE = str(Path(sys.executable).parent / "eventlake")
RULES = REPO / "config" / "prometheus" / "rules" / "eventlake.yml"
#: the alert the end-to-end test forces: a producer that crashed (kill -9) stops answering scrapes
ALERT = "EventlakeOpsTestProducerDown"


def forced_rules() -> str:
    """The production rule EventlakeTargetDown, due at once (``for: 0s``) and for the producer only
    (a slow scrape of another process on this loaded machine must not add a notification)."""
    rule = next(
        r
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "EventlakeTargetDown"
    )
    expr = rule["expr"].replace('job=~"eventlake-.*"', 'job="eventlake-producer"')
    assert expr != rule["expr"], rule["expr"]
    forced = {**rule, "alert": ALERT, "expr": expr, "for": "0s"}
    return yaml.safe_dump({"groups": [{"name": "eventlake.ops-test", "rules": [forced]}]})


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(
            f"{name} is not on PATH: `make system-deps` installs it "
            "(Debian packages prometheus, prometheus-alertmanager)"
        )
    return exe


def ops_settings(make_settings: MakeSettings, home: Path | None = None, **overrides: Any) -> Settings:
    extra = {"home": home} if home is not None else {}
    return make_settings("ops", s3={"local": True}, **extra, **overrides)


# --------------------------------------------------------------------------------------------
# generated configuration (fast: no server)
# --------------------------------------------------------------------------------------------


def test_jobs_are_those_of_the_compose_scrape_config() -> None:
    compose_jobs = {job["job_name"] for job in yaml.safe_load(COMPOSE_PROMETHEUS.read_text())["scrape_configs"]}
    assert set(METRICS_JOBS.values()) == compose_jobs


def test_generated_configs_pass_promtool_and_amtool(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = ops_settings(
        make_settings,
        ops={"scrape_interval_s": 1, "group_wait_s": 1, "repeat_interval_s": 7200},
        slack={"webhook_url": "https://hooks.example.com/services/T/B/secret-token"},
        smtp={"host": "127.0.0.1", "port": 2525, "user": "am", "password": "smtp-secret"},
        alert={"email_to": "a@example.com, b@example.com"},
    )
    write_targets(settings.home)
    prom = tmp_path / "prometheus.yml"
    write_yaml(prom, prometheus_config(settings, "127.0.0.1:9093"))
    done = subprocess.run([tool("promtool"), "check", "config", str(prom)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "eventlake.yml" in done.stdout  # the shared rules file, checked with it

    am = tmp_path / "alertmanager.yml"
    cfg = alertmanager_config(settings)
    write_yaml(am, cfg, private=True)
    assert stat.S_IMODE(am.stat().st_mode) == 0o600
    done = subprocess.run([tool("amtool"), "check-config", str(am)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # the routes of config/alertmanager/alertmanager.yml, with the timings replaced where set
    assert cfg["route"]["group_by"] == ["alertname", "source"]
    assert cfg["route"]["group_wait"] == "1s" and cfg["route"]["group_interval"] == "5m"
    assert cfg["route"]["repeat_interval"] == "7200s" and cfg["route"]["routes"][0]["repeat_interval"] == "7200s"
    receiver = cfg["receivers"][0]
    assert receiver["slack_configs"][0]["send_resolved"] is True
    assert receiver["email_configs"][0]["to"] == "a@example.com, b@example.com"
    assert receiver["email_configs"][0]["auth_password"] == "smtp-secret"


def test_targets_follow_the_process_records(make_settings: MakeSettings) -> None:
    """Running and crashed processes (pid recorded) are targets; stopped ones (no pid, no record) are not."""
    settings = ops_settings(make_settings)
    run = settings.home / "run"
    run.mkdir(parents=True)
    (run / "producer.json").write_text(json.dumps({"name": "producer", "url": "http://127.0.0.1:4001", "pid": 1}))
    (run / "dashboard.json").write_text(
        json.dumps({"name": "dashboard", "endpoint": "http://127.0.0.1:4002", "pid": None})
    )
    (run / "schema_registry.json").write_text(json.dumps({"endpoint": "http://127.0.0.1:4003", "pid": 7}))
    (run / "kafka.json").write_text(json.dumps({"endpoint": "127.0.0.1:4004", "pid": 8}))  # no /metrics
    (run / "streaming.json").write_text("{torn")
    written = write_targets(settings.home)
    assert {(t.job, t.address) for t in written} == {
        ("eventlake-producer", "127.0.0.1:4001"),
        ("eventlake-registry", "127.0.0.1:4003"),
    }
    assert written == live_targets(settings.home)
    groups = json.loads((settings.home / "prometheus" / "targets" / "eventlake-producer.json").read_text())
    assert groups == [{"targets": ["127.0.0.1:4001"], "labels": {"process": "producer"}}]
    assert json.loads((settings.home / "prometheus" / "targets" / "eventlake-dashboard.json").read_text()) == []


def test_missing_binary_fails_with_the_package_name(make_settings: MakeSettings) -> None:
    settings = ops_settings(make_settings, ops={"enabled": True, "alertmanager_bin": ["no-such-alertmanager"]})
    stack = Stack(settings)
    with pytest.raises(ServiceError, match="apt-get install prometheus-alertmanager"):
        stack.service("alertmanager").start()


# --------------------------------------------------------------------------------------------
# end to end: the shared stack plus --ops, a producer started later, killed, restarted
# --------------------------------------------------------------------------------------------


def _get(url: str, path: str, **params: str) -> Any:
    resp = httpx.get(f"{url}{path}", params=params, timeout=5)
    resp.raise_for_status()
    return resp.json()["data"]


def _eventually(what: str, check: Callable[[], Any], timeout: float) -> Any:
    result: list[Any] = []

    def probe() -> bool:
        value = check()
        if value:
            result.append(value)
        return bool(value)

    assert wait_until(probe, timeout=timeout, interval=0.25), f"timed out after {timeout}s waiting for {what}"
    return result[-1]


@pytest.fixture
def receivers() -> Iterator[tuple[Webhook, Mailbox, int]]:
    hook, mailbox, port = Webhook(), Mailbox(), free_port()
    with smtp_server(port, mailbox):
        yield hook, mailbox, port
    hook.close()


def _start_producer(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``eventlake produce`` without --count: a long-running producer serving /metrics (``run/producer.json``)."""
    env = {**os.environ, "EVENTLAKE_HOME": str(settings.home), "EVENTLAKE_S3_LOCAL": "true"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [EVENTLAKE, "produce", "--source", "iot_sensors", "--rate", "20"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _stop_producer(proc: subprocess.Popen[bytes], settings: Settings) -> None:
    """Ctrl-C (its graceful stop, which removes its record); kill it if that does not work."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # a killed producer leaves its record: the shared home must not keep a dead scrape target
    (settings.home / "run" / "producer.json").unlink(missing_ok=True)


def _notifications(hook: Webhook, mailbox: Mailbox, status: str) -> tuple[list[str], list[str]]:
    """Slack titles and email subjects about the test alert with ``status`` (FIRING/RESOLVED)."""
    titles = [
        a.get("title", "")
        for body in list(hook.bodies)
        for a in body.get("attachments", [])
        if ALERT in a.get("title", "")
    ]
    subjects = [str(m["Subject"]) for _, m in list(mailbox.messages) if ALERT in str(m["Subject"])]
    return [t for t in titles if f"[{status}" in t], [s for s in subjects if f"[{status}" in s]


def _on_both(hook: Webhook, mailbox: Mailbox, status: str) -> tuple[list[str], list[str]] | None:
    """The notifications with ``status`` once both channels have at least one, else None."""
    slack, email = _notifications(hook, mailbox, status)
    return (slack, email) if slack and email else None


@pytest.mark.e2e
def test_ops_stack_scrapes_the_stack_and_alerts_once_then_resolves(
    stack: Stack,
    kafka_bootstrap: str,
    make_settings: MakeSettings,
    receivers: tuple[Webhook, Mailbox, int],
    tmp_path: Path,
) -> None:
    hook, mailbox, smtp_port = receivers
    rules = tmp_path / "ops-test-rules.yml"
    rules.write_text(forced_rules())
    settings = ops_settings(
        make_settings,
        home=stack.settings.home,
        ops={
            "enabled": True,
            "scrape_interval_s": 1,
            "evaluation_interval_s": 1,
            "extra_rules_files": [str(rules)],
            "group_wait_s": 1,
            "group_interval_s": 1,
            "repeat_interval_s": 3600,
        },
        slack={"webhook_url": hook.url},
        smtp={"host": "127.0.0.1", "port": smtp_port},
        alert={"email_to": "oncall@example.com", "email_from": "eventlake@example.com"},
    )
    topic = settings.topics.raw("iot_sensors")
    provision_topics(admin_client(kafka_bootstrap), {topic: settings.topics.raw_spec}, 1)
    # the same settings as the CLI sees them, from the environment
    env = {
        **os.environ,
        "EVENTLAKE_HOME": str(settings.home),
        "EVENTLAKE_S3_LOCAL": "true",
        "EVENTLAKE_OPS_SCRAPE_INTERVAL_S": "1",
        "EVENTLAKE_OPS_EVALUATION_INTERVAL_S": "1",
        "EVENTLAKE_OPS_EXTRA_RULES_FILES": json.dumps([str(rules)]),
        "EVENTLAKE_OPS_GROUP_WAIT_S": "1",
        "EVENTLAKE_OPS_GROUP_INTERVAL_S": "1",
        "EVENTLAKE_OPS_REPEAT_INTERVAL_S": "3600",
        "EVENTLAKE_SLACK_WEBHOOK_URL": hook.url,
        "EVENTLAKE_SMTP_HOST": "127.0.0.1",
        "EVENTLAKE_SMTP_PORT": str(smtp_port),
        "EVENTLAKE_ALERT_EMAIL_TO": "oncall@example.com",
        "EVENTLAKE_ALERT_EMAIL_FROM": "eventlake@example.com",
    }
    ops = Stack(settings)
    prometheus, alertmanager = ops.service("prometheus"), ops.service("alertmanager")
    producer: subprocess.Popen[bytes] | None = None
    try:
        # The user's way: `eventlake up --ops` on the running stack adds the two.
        done = subprocess.run(
            [EVENTLAKE, "up", "--ops"], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "prometheus" in done.stdout and "alertmanager" in done.stdout  # the status table
        assert hook.url not in done.stdout + done.stderr
        status = ops.status()
        assert status["prometheus"]["ok"] and status["alertmanager"]["ok"], status
        assert status["alertmanager"]["detail"] == "ready; delivers to slack, email"
        prom_url = status["prometheus"]["url"]
        prom_pid = status["prometheus"]["pid"]
        assert prom_url.startswith("http://127.0.0.1:")
        assert Path(status["prometheus"]["log"]).is_file() and Path(status["alertmanager"]["log"]).is_file()

        # A process started after Prometheus is discovered (file_sd rewritten from <home>/run).
        producer = _start_producer(settings, tmp_path / "producer.log")

        def all_up() -> list[dict[str, Any]] | None:
            active = _get(prom_url, "/api/v1/targets", state="active")["activeTargets"]
            jobs = {t["labels"]["job"] for t in active}
            wanted = {"eventlake-producer", "eventlake-registry", "eventlake-dashboard"}
            return active if wanted <= jobs and all(t["health"] == "up" for t in active) else None

        active = _eventually("every target up", all_up, timeout=30)
        assert {t["labels"]["job"] for t in active} <= set(METRICS_JOBS.values())
        assert prometheus.running_process() is not None and prometheus.running_process().pid == prom_pid  # type: ignore[union-attr]

        # A recording rule of config/prometheus/rules/eventlake.yml has a value.
        def produced_rate() -> float | None:
            result = _get(prom_url, "/api/v1/query", query='eventlake:records_produced:rate5m{source="iot_sensors"}')
            return float(result["result"][0]["value"][1]) if result["result"] else None

        assert _eventually("eventlake:records_produced:rate5m", produced_rate, timeout=15) > 0

        # The producer crashes: up == 0, the alert reaches Slack and email through Alertmanager, once.
        producer.kill()
        producer.wait()
        fired = _eventually(
            "the firing notification on both channels",
            lambda: _on_both(hook, mailbox, "FIRING"),
            timeout=20,
        )
        time.sleep(5)  # five group intervals with the alert still firing: no second notification
        assert _notifications(hook, mailbox, "FIRING") == fired
        assert len(fired[0]) == 1 and len(fired[1]) == 1, fired
        firing_alerts = _get(prom_url, "/api/v1/alerts")["alerts"]
        assert any(a["labels"]["alertname"] == ALERT and a["state"] == "firing" for a in firing_alerts)

        # It is restarted (same port, from its record): the alert resolves, once on each channel.
        producer = _start_producer(settings, tmp_path / "producer.log")
        resolved = _eventually(
            "the resolved notification on both channels",
            lambda: _on_both(hook, mailbox, "RESOLVED"),
            timeout=30,
        )
        time.sleep(3)
        assert _notifications(hook, mailbox, "RESOLVED") == resolved
        assert len(resolved[0]) == 1 and len(resolved[1]) == 1, resolved
        assert _notifications(hook, mailbox, "FIRING") == fired  # and no new firing one
        email = next(m for _, m in mailbox.messages if "[RESOLVED" in str(m["Subject"]))
        assert email["To"] == "oncall@example.com" and email["From"] == "eventlake@example.com"

        # The webhook URL (a credential) is only in the 0600 config file, never in a log or in status.
        secret = hook.url.rsplit("/", 3)[-3:]
        am_config = alertmanager.dir / "alertmanager.yml"
        assert stat.S_IMODE(am_config.stat().st_mode) == 0o600
        for log_file in (prometheus.dir / "prometheus.log", alertmanager.dir / "alertmanager.log"):
            assert "/".join(secret) not in log_file.read_text()
        assert "/".join(secret) not in json.dumps(ops.status())
    finally:
        if producer is not None:
            _stop_producer(producer, settings)
        stopped = [svc.name for svc in (prometheus, alertmanager) if svc.stop()]
    assert stopped == ["prometheus", "alertmanager"]
    assert "prometheus" not in ops.status() or not ops.status()["prometheus"]["ok"]
