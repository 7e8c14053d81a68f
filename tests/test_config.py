from __future__ import annotations

from pathlib import Path

import pytest

from eventlake.config import load_settings
from eventlake.errors import ConfigError


def test_defaults_are_valid_and_paths_absolute(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "h")
    assert s.home.is_absolute()
    assert s.kafka.default_partitions == 6
    assert s.lake_uri == (tmp_path / "h" / "lake").as_uri()


def test_env_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "el.yaml"
    cfg.write_text("kafka:\n  default_partitions: 3\n  heap: 1g\npostgres:\n  database: fromyaml\n")
    monkeypatch.setenv("EVENTLAKE_CONFIG", str(cfg))
    monkeypatch.setenv("EVENTLAKE_KAFKA_DEFAULT_PARTITIONS", "12")
    s = load_settings()
    assert s.kafka.default_partitions == 12  # env wins
    assert s.kafka.heap == "1g"  # yaml kept where env is silent
    assert s.postgres.database == "fromyaml"


def test_nested_env_names_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_POSTGRES_URL", "postgresql://u:pw@db.example:5432/x")
    monkeypatch.setenv("EVENTLAKE_KAFKA_BOOTSTRAP", "broker:9092")
    s = load_settings()
    assert s.postgres.url is not None and s.postgres.url.get_secret_value().endswith("/x")
    assert s.kafka.bootstrap == "broker:9092"
    assert "pw" not in repr(s)  # secrets are masked in reprs


def test_spark_settings_for_a_cluster_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_STREAMING_MASTER", "spark://127.0.0.1:7077")
    monkeypatch.setenv("EVENTLAKE_STREAMING_SPARK_CONF", '{"spark.executor.memory": "768m", "spark.cores.max": "2"}')
    s = load_settings()
    assert s.streaming.master == "spark://127.0.0.1:7077"
    assert s.streaming.spark_conf == {"spark.executor.memory": "768m", "spark.cores.max": "2"}
    monkeypatch.delenv("EVENTLAKE_STREAMING_SPARK_CONF")
    assert load_settings().streaming.spark_conf == {}


def test_negative_partitions_names_field_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_KAFKA_DEFAULT_PARTITIONS", "-3")
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert "kafka.default_partitions" in msg and "'-3'" in msg and "\n" not in msg


def test_secret_value_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("lake:\n  uri: http://user:hunter2@host/bucket\n")
    monkeypatch.setenv("EVENTLAKE_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "lake.uri" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_unknown_key_and_missing_file_are_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("kafka:\n  partitons: 3\n")
    monkeypatch.setenv("EVENTLAKE_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=r"kafka\.partitons"):
        load_settings()
    monkeypatch.setenv("EVENTLAKE_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="is not a file"):
        load_settings()


def test_bad_port_and_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_KAFKA_PORT", "70000")
    with pytest.raises(ConfigError, match=r"kafka\.port"):
        load_settings()
    monkeypatch.delenv("EVENTLAKE_KAFKA_PORT")
    monkeypatch.setenv("EVENTLAKE_LOG_LEVEL", "info")
    assert load_settings().log_level == "INFO"


def test_alert_channels_from_the_documented_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("EVENTLAKE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("EVENTLAKE_SMTP_PORT", "2525")
    monkeypatch.setenv("EVENTLAKE_ALERT_EMAIL_FROM", "lake@example.com")
    monkeypatch.setenv("EVENTLAKE_ALERT_EMAIL_TO", "a@example.com, b@example.com")
    s = load_settings()
    assert s.slack.webhook_url is not None and s.slack.webhook_url.get_secret_value() == "http://127.0.0.1:9/hook"
    assert "127.0.0.1:9" not in repr(s.slack)  # a secret: never printed
    assert (s.smtp.host, s.smtp.port) == ("127.0.0.1", 2525)
    assert s.alert.email_from == "lake@example.com" and s.alert.recipients == ["a@example.com", "b@example.com"]


def test_vacuum_retention_below_deltas_floor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A shorter retention could delete files a replayed batch still reads (time travel).
    monkeypatch.setenv("EVENTLAKE_BATCH_VACUUM_RETENTION_HOURS", "24")
    with pytest.raises(ConfigError, match=r"batch\.vacuum_retention_hours"):
        load_settings()
    monkeypatch.setenv("EVENTLAKE_BATCH_VACUUM_RETENTION_HOURS", "336")
    monkeypatch.setenv("EVENTLAKE_AIRFLOW_TASK_RETRIES", "0")
    settings = load_settings()
    assert settings.batch.vacuum_retention_hours == 336 and settings.airflow.task_retries == 0
