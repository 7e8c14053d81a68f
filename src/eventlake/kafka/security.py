"""How a Kafka client authenticates and encrypts: one value, turned into each client's option names.

:class:`KafkaSecurity` is built from settings once (:func:`client_security`) and handed to every
client: :meth:`~KafkaSecurity.librdkafka` for confluent-kafka (producer, serving-path consumer, lag
probe, admin, alert channel), :meth:`~KafkaSecurity.spark_options` for Spark's Kafka source and sink
(``kafka.*`` options of the Java client) and :meth:`~KafkaSecurity.connect_worker` for a Kafka Connect
worker (its own clients plus the ``producer.``/``consumer.``/``admin.`` ones it makes for connectors).

The password is a :class:`~pydantic.SecretStr` until the moment a client config is made; it is never
logged (:func:`eventlake.logs.register_secret` masks it even if a config dict is logged by mistake)
and ``describe()`` is what ``status`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from eventlake.config import KafkaProtocol, KafkaSettings, ScramMechanism, Settings
from eventlake.errors import ConfigError
from eventlake.logs import register_secret

SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
#: Kafka Connect resolves ``${env:NAME}`` in its worker config from its own environment
CONNECT_ENV_PROVIDER = "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
#: JVM system property naming the config providers a Kafka client or worker may instantiate
AUTOMATIC_PROVIDERS_PROPERTY = "org.apache.kafka.automatic.config.providers"
#: the environment variable that carries the SASL password into a Connect worker
CONNECT_PASSWORD_ENV = "EVENTLAKE_CONNECT_KAFKA_SASL_PASSWORD"  # noqa: S105 - a variable name, not a password
CONNECT_CLIENT_PREFIXES = ("", "producer.", "consumer.", "admin.")


def read_password_file(path: Path) -> SecretStr:
    """The password in ``path`` (one line; a trailing newline is not part of it)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(
            f"cannot read the Kafka SASL password file {path}: {err.strerror or err}",
            "set EVENTLAKE_KAFKA_SASL_PASSWORD_FILE to a readable file (on the local secure stack: run `eventlake up`)",
        ) from err
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"the Kafka SASL password file {path} is empty", "write the password into it")
    return SecretStr(password)


def _jaas_quoted(value: str) -> str:
    """``value`` as a JAAS string literal (backslash and double quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class KafkaSecurity:
    """A client's security: protocol, SCRAM identity, the CA that signed the brokers' certificates."""

    protocol: KafkaProtocol = "PLAINTEXT"
    mechanism: ScramMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.sasl and (self.username is None or self.password is None):
            raise ConfigError(f"Kafka {self.protocol} needs a SASL username and password")
        if self.password is not None:
            register_secret(self.password.get_secret_value())

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def _secret(self) -> str:
        assert self.password is not None
        return self.password.get_secret_value()

    def librdkafka(self) -> dict[str, str]:
        """confluent-kafka / librdkafka config keys (empty for PLAINTEXT)."""
        out: dict[str, str] = {}
        if self.protocol == "PLAINTEXT":
            return out
        out["security.protocol"] = self.protocol.lower()
        if self.sasl:
            out |= {
                "sasl.mechanisms": self.mechanism,
                "sasl.username": str(self.username),
                "sasl.password": self._secret(),
            }
        if self.tls:
            if self.ca_file is not None:
                out["ssl.ca.location"] = str(self.ca_file)
            out["ssl.endpoint.identification.algorithm"] = "https" if self.check_hostname else "none"
        return out

    def java(self, *, password: str | None = None) -> dict[str, str]:
        """Kafka Java client properties (``security.protocol``, ``sasl.jaas.config``, PEM truststore).

        ``password``: what the JAAS config says instead of the password itself (a config-provider
        reference such as ``${env:NAME}``)."""
        out: dict[str, str] = {}
        if self.protocol == "PLAINTEXT":
            return out
        out["security.protocol"] = self.protocol
        if self.sasl:
            secret = password if password is not None else _jaas_quoted(self._secret())
            out["sasl.mechanism"] = self.mechanism
            out["sasl.jaas.config"] = (
                f"{SCRAM_LOGIN_MODULE} required username={_jaas_quoted(str(self.username))} password={secret};"
            )
        if self.tls:
            if self.ca_file is not None:
                out["ssl.truststore.type"] = "PEM"
                out["ssl.truststore.location"] = str(self.ca_file)
            # Kafka's Java client verifies the host name unless this is empty
            out["ssl.endpoint.identification.algorithm"] = "https" if self.check_hostname else ""
        return out

    def spark_options(self) -> dict[str, str]:
        """Options of Spark's Kafka source and sink: the Java client's properties as ``kafka.<name>``."""
        return {f"kafka.{k}": v for k, v in self.java().items()}

    def connect_worker(self) -> tuple[dict[str, str], dict[str, str]]:
        """(worker properties, environment) of a Kafka Connect worker.

        The worker's own clients and the ones it makes for connectors (``producer.``, ``consumer.``,
        ``admin.``) all get the same identity. The password stays out of the properties file: the
        JAAS config names ``${env:EVENTLAKE_CONNECT_KAFKA_SASL_PASSWORD}``, which Connect's
        EnvVarConfigProvider resolves from the worker's environment (the second value)."""
        env: dict[str, str] = {}
        reference = None
        if self.sasl:
            env[CONNECT_PASSWORD_ENV] = self._secret()
            reference = _jaas_quoted("${env:" + CONNECT_PASSWORD_ENV + "}")
        client = self.java(password=reference)
        props: dict[str, str] = {}
        if self.sasl:
            props |= {"config.providers": "env", "config.providers.env.class": CONNECT_ENV_PROVIDER}
        for prefix in CONNECT_CLIENT_PREFIXES:
            props |= {f"{prefix}{k}": v for k, v in client.items()}
        return props, env

    def describe(self) -> dict[str, Any]:
        """What ``status`` shows: protocol, mechanism, principal, CA file; never the password."""
        out: dict[str, Any] = {"protocol": self.protocol}
        if self.sasl:
            out |= {"mechanism": self.mechanism, "principal": f"User:{self.username}"}
        if self.tls and self.ca_file is not None:
            out["ca_file"] = str(self.ca_file)
        return out


PLAINTEXT = KafkaSecurity()


def local_password_file(settings: Settings, principal: str) -> Path:
    """The local secure broker's generated password of ``principal`` (mode 0600)."""
    assert settings.kafka.secrets_dir is not None  # resolved by Settings
    return settings.kafka.secrets_dir / f"{principal}.password"


def local_ca_file(settings: Settings) -> Path:
    return settings.kafka_tls_dir / "ca.pem"


def from_kafka_settings(kafka: KafkaSettings) -> KafkaSecurity:
    """The security ``kafka`` configures explicitly (``security_protocol`` and what goes with it)."""
    password = kafka.sasl_password
    if kafka.security_protocol.startswith("SASL_") and password is None and kafka.sasl_password_file is not None:
        password = read_password_file(kafka.sasl_password_file)
    return KafkaSecurity(
        protocol=kafka.security_protocol,
        mechanism=kafka.sasl_mechanism,
        username=kafka.sasl_username,
        password=password,
        ca_file=kafka.ssl_ca_file,
        check_hostname=kafka.ssl_check_hostname,
    )


def admin_security(settings: Settings) -> KafkaSecurity:
    """The local secure broker's admin identity (its password file, its CA)."""
    kafka = settings.kafka
    return KafkaSecurity(
        protocol="SASL_SSL",
        mechanism=kafka.sasl_mechanism,
        username=kafka.principals.admin,
        password=read_password_file(local_password_file(settings, kafka.principals.admin)),
        ca_file=local_ca_file(settings),
        check_hostname=True,
    )


def client_security(settings: Settings) -> KafkaSecurity:
    """The security every Kafka client of this process uses.

    Explicit settings win. Without them, a process of the local secure stack (``kafka.secure``, no
    ``bootstrap``) connects as the stack's admin; anything else is PLAINTEXT."""
    kafka = settings.kafka
    if kafka.security_protocol != "PLAINTEXT":
        return from_kafka_settings(kafka)
    if kafka.secure and kafka.bootstrap is None:
        return admin_security(settings)
    return PLAINTEXT
