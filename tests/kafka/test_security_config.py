"""Kafka client security without a broker: settings, the option names each client gets, redaction,
the broker's certificates and the ACL model. ``tests/kafka/test_security.py`` runs them for real."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, ResourceType
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import SecretStr

from eventlake.config import load_settings
from eventlake.errors import ConfigError
from eventlake.kafka.acls import platform_acls
from eventlake.kafka.security import (
    CONNECT_PASSWORD_ENV,
    PLAINTEXT,
    KafkaSecurity,
    client_security,
    from_kafka_settings,
)
from eventlake.logs import configure_logging, redact, register_secret
from eventlake.services.certs import make_broker_tls
from eventlake.services.connect import ConnectService

SECRET = "s3cr3t-Pa55word-for-tests"


def _scram(tmp_path: Path, password: str = SECRET) -> KafkaSecurity:
    return KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "streaming", SecretStr(password), tmp_path / "ca.pem")


def test_plaintext_adds_no_client_options() -> None:
    assert PLAINTEXT.librdkafka() == PLAINTEXT.java() == PLAINTEXT.spark_options() == {}
    assert PLAINTEXT.connect_worker() == ({}, {})


def test_sasl_ssl_options_for_librdkafka_spark_and_connect(tmp_path: Path) -> None:
    sec = _scram(tmp_path)
    assert sec.librdkafka() == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "streaming",
        "sasl.password": SECRET,
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.endpoint.identification.algorithm": "https",
    }
    spark = sec.spark_options()
    assert spark["kafka.security.protocol"] == "SASL_SSL" and spark["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert spark["kafka.sasl.jaas.config"] == (
        f'org.apache.kafka.common.security.scram.ScramLoginModule required username="streaming" password="{SECRET}";'
    )
    assert spark["kafka.ssl.truststore.type"] == "PEM"
    assert spark["kafka.ssl.truststore.location"] == str(tmp_path / "ca.pem")
    props, env = sec.connect_worker()
    # The worker, and the clients it makes for connectors, all authenticate; the password is only in env.
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert props[f"{prefix}security.protocol"] == "SASL_SSL"
        assert f"${{env:{CONNECT_PASSWORD_ENV}}}" in props[f"{prefix}sasl.jaas.config"]
    assert props["config.providers.env.class"].endswith("EnvVarConfigProvider")
    assert SECRET not in json.dumps(props) and env == {CONNECT_PASSWORD_ENV: SECRET}


def test_jaas_quotes_and_backslashes_are_escaped(tmp_path: Path) -> None:
    jaas = _scram(tmp_path, 'pa"ss\\word!').java()["sasl.jaas.config"]
    assert jaas.endswith('password="pa\\"ss\\\\word!";')


def test_password_never_in_repr_or_describe(tmp_path: Path) -> None:
    sec = _scram(tmp_path)
    assert SECRET not in repr(sec) and SECRET not in json.dumps(sec.describe())
    assert sec.describe() == {
        "protocol": "SASL_SSL",
        "mechanism": "SCRAM-SHA-512",
        "principal": "User:streaming",
        "ca_file": str(tmp_path / "ca.pem"),
    }


def test_settings_from_env_and_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw = tmp_path / "pw"
    pw.write_text(SECRET + "\n")
    monkeypatch.setenv("EVENTLAKE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("EVENTLAKE_KAFKA_SASL_USERNAME", "producer")
    monkeypatch.setenv("EVENTLAKE_KAFKA_SASL_PASSWORD_FILE", str(pw))
    monkeypatch.setenv("EVENTLAKE_KAFKA_SSL_CA_FILE", str(tmp_path / "ca.pem"))
    settings = load_settings(home=tmp_path)
    sec = client_security(settings)
    assert sec.username == "producer" and sec.password is not None
    assert sec.password.get_secret_value() == SECRET  # the file's trailing newline is not part of it
    pw.unlink()
    with pytest.raises(ConfigError, match="cannot read the Kafka SASL password file") as err:
        from_kafka_settings(settings.kafka)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_password": SECRET}, "needs sasl_username"),
        ({"security_protocol": "SASL_SSL", "sasl_username": "producer"}, "needs sasl_password"),
        ({"sasl_password": SECRET, "sasl_password_file": "/x"}, "not both"),
    ],
)
def test_incomplete_credentials_are_one_line_errors_without_the_secret(
    tmp_path: Path, kafka: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(home=tmp_path, kafka=kafka)
    assert SECRET not in str(err.value) and "\n" not in str(err.value)


def test_local_secure_stack_processes_default_to_the_admin(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, kafka={"secure": True})
    with pytest.raises(ConfigError, match=r"admin\.password"):  # not made yet: `eventlake up` makes it
        client_security(settings)
    assert settings.kafka.secrets_dir is not None
    settings.kafka.secrets_dir.mkdir(parents=True)
    (settings.kafka.secrets_dir / "admin.password").write_text("generated-admin-pw")
    sec = client_security(settings)
    assert (sec.protocol, sec.username, sec.ca_file) == ("SASL_SSL", "admin", tmp_path / "kafka" / "tls" / "ca.pem")
    # An external cluster is never given the local admin's identity.
    assert client_security(load_settings(home=tmp_path, kafka={"secure": True, "bootstrap": "h:1"})) is PLAINTEXT


def test_log_lines_never_carry_a_registered_secret_or_a_jaas_password(tmp_path: Path) -> None:
    log_file = tmp_path / "log.json"
    configure_logging("INFO", file=log_file)
    try:
        register_secret(SECRET)
        log = logging.getLogger("eventlake.test")
        log.info("client config", extra={"config": {"sasl.password": SECRET}})
        log.warning(f"spark option {_scram(tmp_path, 'other-unregistered-pw').java()['sasl.jaas.config']}")
        try:
            raise RuntimeError(f"failed with {SECRET}")
        except RuntimeError:
            log.exception("boom")
    finally:
        logging.getLogger().handlers[:] = []
    text = log_file.read_text()
    # ``other-unregistered-pw`` was registered by KafkaSecurity itself; the JAAS pattern masks it too
    assert SECRET not in text and "other-unregistered-pw" not in text
    assert text.count("***") >= 3 and len(text.splitlines()) == 3
    assert redact('x password="abc-def-ghi"; y') == 'x password="***"; y'


def test_broker_certificates(tmp_path: Path) -> None:
    tls = make_broker_tls(tmp_path / "tls", ["127.0.0.1", "localhost"])
    for key in (tls.keystore, tls.ca_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(tls.dir.stat().st_mode) == 0o700
    ca = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    chain = x509.load_pem_x509_certificates(tls.keystore.read_bytes())
    broker = chain[0]
    load_pem_private_key(tls.keystore.read_bytes(), password=None)  # the key comes first, unencrypted PKCS#8
    broker.verify_directly_issued_by(ca)
    sans = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert tls.principal == "User:CN=eventlake-kafka"


def test_acl_model_producer_never_reads_streaming_never_writes_raw(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    acls = platform_acls(settings)
    by = {(a.principal, a.restype, a.name, a.operation) for a in acls}
    raw = settings.topics.raw("iot_sensors")
    assert ("User:producer", ResourceType.TOPIC, raw, AclOperation.WRITE) in by
    assert ("User:streaming", ResourceType.TOPIC, raw, AclOperation.READ) in by
    assert not [a for a in acls if a.principal == "User:producer" and a.operation == AclOperation.READ]
    assert not [
        a for a in acls if a.principal == "User:streaming" and a.name == raw and a.operation == AclOperation.WRITE
    ]


def test_connect_worker_config_carries_the_security_not_the_password(tmp_path: Path) -> None:
    pw = tmp_path / "connect.pw"
    pw.write_text(SECRET)
    settings = load_settings(
        home=tmp_path,
        connect={"enabled": True},
        kafka={
            "bootstrap": "127.0.0.1:9093",
            "security_protocol": "SASL_SSL",
            "sasl_username": "connect",
            "sasl_password_file": str(pw),
            "ssl_ca_file": str(tmp_path / "ca.pem"),
        },
    )
    props, env = ConnectService(settings).worker_config("127.0.0.1:9093", 8083)
    assert props["bootstrap.servers"] == "127.0.0.1:9093" and props["consumer.sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["admin.ssl.truststore.location"] == str(tmp_path / "ca.pem")
    assert SECRET not in json.dumps(props) and env[CONNECT_PASSWORD_ENV] == SECRET
