"""Errors that reach users as one line: what went wrong, then what to do about it."""

from __future__ import annotations


class EventlakeError(Exception):
    """Base error. ``str(err)`` is a single line fit for a CLI: problem, then a hint.

    The CLI prints it as ``error: <message>`` and exits non-zero; library users can catch
    the subclasses to react to a specific failure.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}; {hint}" if hint else message)


class ConfigError(EventlakeError):
    """Settings failed validation (names the field, the value and where it came from)."""


class SetupError(EventlakeError):
    """A prerequisite is missing: Java, Maven, the fetched jars."""


class ServiceError(EventlakeError):
    """A managed service could not be started, checked or stopped."""


class PortInUseError(ServiceError):
    """A configured port is taken by another process."""


class CorruptDataError(ServiceError):
    """A service's data directory cannot be used as it is."""


class UnreachableError(EventlakeError):
    """An external component (Kafka, PostgreSQL, S3, registry) does not answer."""


class RegistryRequestError(EventlakeError):
    """A Schema Registry request failed. ``status`` is the HTTP status it answered (None: no answer),
    so callers can react to one (a 404 subject is "nothing registered yet" to a decoder)."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class RegistryUnavailableError(RegistryRequestError, UnreachableError):
    """The Schema Registry did not answer, or answered a server error (5xx) or something not JSON."""
