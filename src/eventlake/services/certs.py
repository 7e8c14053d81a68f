"""Certificates of the local secure broker: a private CA and a broker certificate it signs.

Made once, at the broker's first secure start (``cryptography``), into ``<home>/kafka/tls``:
``ca.pem`` (the CA certificate clients trust: ``kafka.ssl_ca_file``), ``broker.pem`` (the broker's
key and certificate chain, PEM, what Kafka's ``ssl.keystore.type=PEM`` reads) and ``ca.key``. Both
keys are written with mode 0600 from the first byte (the file is created with that mode, not
chmod-ed after the write). The broker certificate names every host it is reached at (DNS and IP
subject alternative names) and allows both server and client use: the same certificate is the
broker's identity on its mutual-TLS controller listener.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_BITS = 2048
VALID_DAYS = 825  # the longest validity TLS clients accept for a leaf certificate
BROKER_CN = "eventlake-kafka"


@dataclass(frozen=True)
class BrokerTls:
    """Where the local broker's TLS material lives."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def keystore(self) -> Path:
        """The broker's private key followed by its certificate and the CA's (PEM)."""
        return self.dir / "broker.pem"

    @property
    def principal(self) -> str:
        """The broker's principal on the mutual-TLS controller listener (its certificate's subject)."""
        return f"User:CN={BROKER_CN}"

    def exists(self) -> bool:
        return self.ca_cert.is_file() and self.keystore.is_file()


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file that is 0600 before any byte is in it (replacing ``path`` atomically)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eventlake"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _sans(hosts: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    # PKCS#8, what Kafka's PEM keystore reads; unencrypted, protected by the file mode
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_broker_tls(directory: Path, hosts: list[str]) -> BrokerTls:
    """A new CA and a broker certificate for ``hosts`` (names and IP addresses) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=VALID_DAYS)

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    ca_name = _name("eventlake local CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_CN)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_sans(hosts)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tls = BrokerTls(directory)
    pem = serialization.Encoding.PEM
    write_private(tls.ca_key, _pem_key(ca_key))
    write_private(tls.keystore, _pem_key(key) + cert.public_bytes(pem) + ca.public_bytes(pem))
    tls.ca_cert.write_bytes(ca.public_bytes(pem))
    return tls
