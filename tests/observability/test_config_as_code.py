"""Prometheus and Grafana configuration as code (config/prometheus, config/grafana).

promtool (Debian package ``prometheus``, installed by ``make setup``) validates the scrape config and
the rules and runs the rules' unit tests; the Grafana dashboards must be exactly what
config/grafana/generate.py produces, use only the provisioned data sources, and query only metrics
in eventlake.observability.metrics.CATALOGUE (or recording rules) and only eventlake's tables.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from eventlake.observability.metrics import CATALOGUE

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "config" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules" / "eventlake.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests" / "eventlake_test.yml"
GRAFANA_DIR = REPO / "config" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
GENERATOR = GRAFANA_DIR / "generate.py"

DASHBOARD_FILES = ("pipeline-overview.json", "source-kpis.json", "streaming-health.json", "data-quality.json")
POSTGRES_TABLES = frozenset(
    {
        "gold_user_activity_1m",
        "gold_iot_sensors_1m",
        "gold_transactions_1m",
        "gold_transactions_5m_sliding",
        "dq_metrics",
        "dq_alerts",
        "anomalies",
    }
)
PANEL_TYPES = frozenset({"timeseries", "stat", "table"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not on PATH: `make setup` installs it (Debian package `prometheus`)")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=REPO, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eventlake_grafana_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def catalogued_series() -> set[str]:
    """Series names a scrape can return for the catalogue (histograms as _bucket/_sum/_count)."""
    names: set[str] = set()
    for name, kind, _labels, _meaning in CATALOGUE:
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
        else:
            names.add(name)
    return names


def recording_rules() -> set[str]:
    return {r["record"] for g in load_yaml(RULES)["groups"] for r in g["rules"] if "record" in r}


def rule_exprs() -> list[tuple[str, str]]:
    """(rule name, expr) of every rule in the rules file."""
    return [(r.get("record") or r["alert"], r["expr"]) for g in load_yaml(RULES)["groups"] for r in g["rules"]]


_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "atan2"}
    | {"inf", "nan", "Inf", "NaN"}
)


def metric_names(expr: str) -> set[str]:
    """Metric (and recording-rule) names a PromQL expression selects.

    Strings, label matchers, ranges, grouping label lists, Grafana variables and numbers are
    dropped first; an identifier followed by ``(`` is a function or aggregation.
    """
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', " ", expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+(?::\w+)?\}?", " ", s)
    s = re.sub(r"(?<![\w:])\d[\w.]*", " ", s)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        if re.match(r"\s*\(", s[match.end() :]) or match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def unknown_metrics(expr: str, allowed: set[str]) -> set[str]:
    return metric_names(expr) - allowed


def sql_tables(raw_sql: str) -> set[str]:
    return set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", raw_sql, flags=re.IGNORECASE))


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {name: json.loads((DASHBOARDS_DIR / name).read_text(encoding="utf-8")) for name in DASHBOARD_FILES}


def provisioned_datasources() -> dict[str, str]:
    """uid -> type of every provisioned Grafana data source."""
    return {ds["uid"]: ds["type"] for ds in load_yaml(DATASOURCES)["datasources"]}


def all_targets() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, model in load_dashboards().items():
        for panel in model["panels"]:
            for target in panel["targets"]:
                yield name, panel, target


def prometheus_exprs() -> list[tuple[str, str]]:
    """(where, expr) of every PromQL query in the dashboards, variable queries included."""
    found = [
        (f"{name}: {panel['title']}", target["expr"])
        for name, panel, target in all_targets()
        if panel["datasource"]["type"] == "prometheus"
    ]
    for name, model in load_dashboards().items():
        for var in model.get("templating", {}).get("list", []):
            if var.get("type") == "query" and var["datasource"]["type"] == "prometheus":
                m = re.fullmatch(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)", var["definition"])
                assert m, f"{name}: variable {var['name']}: unsupported query {var['definition']!r}"
                found.append((f"{name}: variable {var['name']}", m.group(1)))
    return found


def postgres_sqls() -> list[tuple[str, str]]:
    return [
        (f"{name}: {panel['title']}", target["rawSql"])
        for name, panel, target in all_targets()
        if panel["datasource"]["type"] == "grafana-postgresql-datasource"
    ]


# --------------------------------------------------------------------------------------------
# promtool
# --------------------------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


_GROUP = "groups:\n- name: g\n  rules:\n"
BROKEN_RULES = {  # rules file -> what promtool must say about it
    "bad PromQL": (
        _GROUP + "  - alert: Broken\n    expr: sum(rate(eventlake_produce_errors_total[5m])\n",
        "unclosed left parenthesis",
    ),
    "bad duration": (
        _GROUP + "  - alert: Broken\n    expr: vector(1) > 0\n    for: ten minutes\n",
        "not a valid duration",
    ),
    "record and alert": (
        _GROUP + "  - record: a:b:c\n    alert: Both\n    expr: vector(1)\n",
        "only one of 'record' and 'alert'",
    ),
    "no expr": (_GROUP + "  - alert: NoExpr\n    for: 5m\n", "field 'expr' must be set"),
}


@pytest.mark.parametrize(("content", "reason"), BROKEN_RULES.values(), ids=BROKEN_RULES.keys())
def test_promtool_rejects_broken_rules(tmp_path: Path, content: str, reason: str) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(content, encoding="utf-8")
    result = promtool("check", "rules", broken)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "FAILED" in output
    assert reason in output


def test_rule_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The unit tests are not vacuous: loosening the lag and SLO thresholds makes them fail."""
    rules = RULES.read_text(encoding="utf-8")
    loosened = rules.replace("> 1000", "> 5000").replace("p95_5m > 30", "p95_5m > 60")
    assert loosened != rules
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(loosened, encoding="utf-8")
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    result = promtool("test", "rules", tmp_path / "tests" / RULE_TESTS.name)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "EventlakeConsumerLagGrowing" in result.stdout + result.stderr
    assert "EventlakeBatchDurationOverSLO" in result.stdout + result.stderr


def test_dashboard_exprs_are_valid_promql(tmp_path: Path) -> None:
    """Every dashboard query, with Grafana's variables filled in, parses as PromQL (via promtool)."""
    substitutions = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
    rules = []
    for i, (where, expr) in enumerate(prometheus_exprs()):
        promql = expr
        for var, value in substitutions.items():
            promql = promql.replace(var, value)
        promql = re.sub(r"\$\{?\w+\}?", "x", promql)
        rules.append({"record": f"dashboard:query_{i}:check", "expr": promql, "labels": {"where": where}})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# Prometheus configuration
# --------------------------------------------------------------------------------------------


def test_scrape_config_targets() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    expected = {
        "eventlake-streaming": "streaming:9108",
        "eventlake-serving": "streaming:9110",
        "eventlake-producer": "producer:9109",
        "eventlake-registry": "schema-registry:8081",
        "eventlake-dashboard": "dashboard:8050",
    }
    assert set(jobs) == set(expected)
    for name, target in expected.items():
        assert jobs[name]["metrics_path"] == "/metrics"
        assert [t for sc in jobs[name]["static_configs"] for t in sc["targets"]] == [target]


def test_alerts_have_severity_and_annotations() -> None:
    alerts = [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]
    names = {a["alert"] for a in alerts}
    assert {
        "EventlakeConsumerLagGrowing",
        "EventlakeBatchDurationOverSLO",
        "EventlakeNoInput",
        "EventlakeDQFailureRateHigh",
        "EventlakeCriticalDQAlertOpen",
        "EventlakeProduceErrors",
        "EventlakeTargetDown",
    } <= names
    for alert in alerts:
        assert alert.get("for"), alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert alert["annotations"].get("summary") and alert["annotations"].get("description"), alert["alert"]
    dq = {a["labels"]["severity"] for a in alerts if a["alert"] == "EventlakeDQFailureRateHigh"}
    assert dq == {"warning", "critical"}


#: series Prometheus itself records for every scrape (not eventlake metrics)
PROMETHEUS_SERIES = frozenset({"up"})


def test_rules_reference_only_catalogued_metrics() -> None:
    allowed = catalogued_series() | recording_rules() | PROMETHEUS_SERIES
    unknown = {name: bad for name, expr in rule_exprs() if (bad := unknown_metrics(expr, allowed))}
    assert not unknown, f"metrics not in eventlake.observability.metrics.CATALOGUE: {unknown}"
    assert all(name.startswith("eventlake:") for name in recording_rules())


def test_metric_name_extraction() -> None:
    """The checker itself: finds selectors, ignores functions, labels, strings, variables; flags typos."""
    expr = (
        'histogram_quantile(0.95, sum by (query, le) (rate(eventlake_stream_batch_duration_seconds_bucket{query=~"$q"}'
        "[$__rate_interval]))) / on(query) group_left() eventlake:stream_input_rows:rate5m > bool 1e3 "
        "or time() - eventlake_stream_last_progress_timestamp_seconds offset 5m"
    )
    assert metric_names(expr) == {
        "eventlake_stream_batch_duration_seconds_bucket",
        "eventlake:stream_input_rows:rate5m",
        "eventlake_stream_last_progress_timestamp_seconds",
    }
    allowed = catalogued_series() | recording_rules()
    assert unknown_metrics("sum(rate(eventlake_records_produced_total[5m]))", allowed) == set()
    assert unknown_metrics("sum(rate(eventlake_records_produce_total[5m]))", allowed) == {
        "eventlake_records_produce_total"
    }
    assert unknown_metrics("eventlake_produce_latency_seconds_total", allowed) == {
        "eventlake_produce_latency_seconds_total"
    }
    assert unknown_metrics("eventlake:made_up:rate5m", allowed) == {"eventlake:made_up:rate5m"}
    assert sql_tables("SELECT 1 FROM dq_alerts a JOIN users u ON true") == {"dq_alerts", "users"}


# --------------------------------------------------------------------------------------------
# Grafana provisioning
# --------------------------------------------------------------------------------------------


def _password_values(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if "password" in str(key).lower():
                yield f"{path}.{key}", value
            yield from _password_values(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _password_values(value, f"{path}[{i}]")


def test_datasources_provisioning() -> None:
    config = load_yaml(DATASOURCES)
    by_uid = {ds["uid"]: ds for ds in config["datasources"]}
    assert set(by_uid) == {"prometheus", "eventlake-postgres"}
    prom_ds = by_uid["prometheus"]
    assert prom_ds["type"] == "prometheus"
    assert prom_ds["url"] == "http://prometheus:9090"
    pg = by_uid["eventlake-postgres"]
    assert pg["type"] == "grafana-postgresql-datasource"
    assert pg["url"] == "postgres:5432"
    assert pg["user"] == "eventlake"
    assert pg["jsonData"]["database"] == "eventlake"
    assert pg["secureJsonData"]["password"] == "${EVENTLAKE_POSTGRES_PASSWORD}"
    # no literal secret anywhere: every password-like key is the environment reference
    for where, value in _password_values(config):
        assert value == "${EVENTLAKE_POSTGRES_PASSWORD}", f"{where} must come from the environment"


def test_dashboard_provider() -> None:
    providers = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert len(providers) == 1
    provider = providers[0]
    assert provider["type"] == "file"
    assert provider["folder"] == "eventlake"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# --------------------------------------------------------------------------------------------
# Grafana dashboards
# --------------------------------------------------------------------------------------------


def test_dashboards_are_up_to_date_with_generator() -> None:
    generator = load_generator()
    models = generator.build_dashboards()
    assert set(models) == set(DASHBOARD_FILES)
    assert {p.name for p in DASHBOARDS_DIR.glob("*.json")} == set(DASHBOARD_FILES)
    for name, model in models.items():
        committed = (DASHBOARDS_DIR / name).read_text(encoding="utf-8")
        assert committed == generator.render(model), (
            f"{name} is out of date: run `.venv/bin/python config/grafana/generate.py`"
        )


def test_generator_check_mode_detects_drift(tmp_path: Path) -> None:
    generator = load_generator()
    assert generator.main(["--out", str(tmp_path)]) == 0
    assert generator.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "source-kpis.json").write_text("{}\n", encoding="utf-8")
    assert generator.main(["--out", str(tmp_path), "--check"]) == 1


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    )


def _check_target(where: str, ds_type: str, target: dict[str, Any]) -> None:
    assert target.get("refId"), where
    if "datasource" in target:
        assert target["datasource"]["type"] == ds_type, where
    if ds_type == "prometheus":
        assert target.get("expr"), where
    else:
        assert target.get("rawSql"), where
        assert target.get("rawQuery") is True, where
        assert target.get("format") in {"time_series", "table"}, where


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_dashboard_structure(name: str) -> None:
    model = json.loads((DASHBOARDS_DIR / name).read_text(encoding="utf-8"))
    for key in ("uid", "title", "schemaVersion", "time", "refresh", "tags", "panels"):
        assert key in model, f"{name}: missing {key}"
    assert model["uid"].startswith("eventlake-")
    assert model["schemaVersion"] == 39
    assert model["refresh"] == "10s"
    assert "eventlake" in model["tags"]
    assert {"from", "to"} <= set(model["time"])
    panels = model["panels"]
    assert panels, name
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    datasources = provisioned_datasources()
    for i, panel in enumerate(panels):
        where = f"{name}: panel {panel['id']} {panel.get('title')!r}"
        assert panel["type"] in PANEL_TYPES, where
        assert panel.get("title"), where
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"} and grid["x"] + grid["w"] <= 24, where
        assert not any(_overlap(grid, other["gridPos"]) for other in panels[:i]), f"{where} overlaps another panel"
        ds = panel["datasource"]
        assert datasources.get(ds["uid"]) == ds["type"], f"{where}: datasource {ds} is not provisioned"
        assert panel["targets"], where
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            _check_target(where, ds["type"], target)
    for var in model.get("templating", {}).get("list", []):
        if "datasource" in var:
            assert datasources.get(var["datasource"]["uid"]) == var["datasource"]["type"], f"{name}: {var['name']}"


def test_dashboard_uids_are_unique() -> None:
    uids = [model["uid"] for model in load_dashboards().values()]
    assert len(uids) == len(set(uids))


def test_dashboards_query_only_catalogued_metrics() -> None:
    allowed = catalogued_series() | recording_rules()
    exprs = prometheus_exprs()
    assert exprs
    unknown = {where: bad for where, expr in exprs if (bad := unknown_metrics(expr, allowed))}
    assert not unknown, f"metrics not in CATALOGUE nor recording rules: {unknown}"


def test_dashboards_query_only_eventlake_tables() -> None:
    sqls = postgres_sqls()
    assert sqls
    for where, raw_sql in sqls:
        tables = sql_tables(raw_sql)
        assert tables, f"{where}: no table found in {raw_sql!r}"
        assert tables <= POSTGRES_TABLES, f"{where}: unknown tables {tables - POSTGRES_TABLES}"
        if any(t.startswith("gold_") for t in tables):
            assert "$__timeFilter(window_start)" in raw_sql, f"{where}: gold queries filter on window_start"
    used = {t for _, raw_sql in sqls for t in sql_tables(raw_sql)}
    assert used == POSTGRES_TABLES, f"tables without a panel: {POSTGRES_TABLES - used}"


def test_readme_lists_every_metric() -> None:
    from eventlake.observability.metrics import CATALOGUE  # noqa: PLC0415

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name for name, *_ in CATALOGUE if f"| `{name}` |" not in readme]
    assert not missing, f"add to the README's metric table: {missing}"
