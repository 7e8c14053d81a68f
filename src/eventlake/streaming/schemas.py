"""Writer schemas by id and the subject's latest (reader) schema, from the Schema Registry."""

from __future__ import annotations

import logging

import httpx

from eventlake.errors import RegistryRequestError
from eventlake.observability.metrics import REGISTRY_UNREACHABLE
from eventlake.registry.client import get_json

log = logging.getLogger(__name__)


class SchemaCache:
    """The subject's schemas by id (immutable, so cached forever); the latest is asked each batch.

    A registry outage does not stop streaming once the subject is known: the batch decodes with the
    versions seen so far (a version registered during the outage is picked up after it), and the
    failure is logged. Before the first successful answer there is nothing to decode with: it raises
    :class:`RegistryRequestError` (``RegistryUnavailableError`` for no answer or a 5xx), one line
    for the CLI.
    """

    def __init__(self, registry_url: str, subject: str, *, timeout_s: float = 5.0) -> None:
        self.client = httpx.Client(base_url=registry_url, timeout=timeout_s)
        self.subject = subject
        self._subject: dict[int, str] = {}
        self._reader: str | None = None

    def _get(self, path: str) -> dict[str, object]:
        body = get_json(self.client, path)
        if not isinstance(body, dict) or "schema" not in body or "id" not in body:
            raise RegistryRequestError(f"schema registry answered GET {path} with no schema and id: {str(body)[:200]}")
        return body

    def _latest(self) -> dict[str, object]:
        return self._get(f"/subjects/{self.subject}/versions/latest")

    def latest(self) -> str:
        return str(self._latest()["schema"])

    def subject_writers(self) -> dict[int, str]:
        """Every schema registered under the subject, by id (TopicNameStrategy: what the topic may hold).
        Re-read when the latest version is one not seen yet, so a version registered mid-stream is known
        from the next batch on; otherwise no extra request."""
        try:
            body = self._latest()
        except RegistryRequestError as err:
            if not self._subject or self._reader is None:
                raise
            REGISTRY_UNREACHABLE.labels(self.subject).inc()
            log.warning(
                "schema registry unreachable; decoding with the cached versions",
                extra={
                    "subject": self.subject,
                    "versions": len(self._subject),
                    "error": str(err)[:300],
                },
            )
            return dict(self._subject)
        if int(str(body["id"])) not in self._subject:
            versions = get_json(self.client, f"/subjects/{self.subject}/versions")
            for v in versions if isinstance(versions, list) else []:
                one = self._get(f"/subjects/{self.subject}/versions/{v}")
                self._subject[int(str(one["id"]))] = str(one["schema"])
            self._subject[int(str(body["id"]))] = str(body["schema"])
        self._reader = str(body["schema"])
        return dict(self._subject)

    @property
    def reader(self) -> str:
        """The subject's latest schema as of the last ``subject_writers`` call."""
        if self._reader is None:
            return self.latest()
        return self._reader


def require_subjects(registry_url: str, subjects: list[str]) -> None:
    """The registry answers for every subject, or :class:`RegistryRequestError` now: a pipeline checks
    this before Spark starts (15-40 s), so a registry that is down fails in a second, in one line,
    instead of after the session is up. A subject not registered yet (404) is fine: a pipeline may
    start before its producers, whose first record comes with its schema."""
    for subject in subjects:
        cache = SchemaCache(registry_url, subject)
        try:
            cache.latest()
        except RegistryRequestError as err:
            if err.status != 404:
                raise
        finally:
            cache.client.close()
