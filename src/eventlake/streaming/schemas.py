"""Writer schemas by id and the subject's latest (reader) schema, from the Schema Registry."""

from __future__ import annotations

import logging

import httpx

from eventlake.observability.metrics import REGISTRY_UNREACHABLE

log = logging.getLogger(__name__)


class SchemaCache:
    """The subject's schemas by id (immutable, so cached forever); the latest is asked each batch.

    A registry outage does not stop streaming once the subject is known: the batch decodes with the
    versions seen so far (a version registered during the outage is picked up after it), and the
    failure is logged. Before the first successful answer there is nothing to decode with: it raises.
    """

    def __init__(self, registry_url: str, subject: str, *, timeout_s: float = 5.0) -> None:
        self.client = httpx.Client(base_url=registry_url, timeout=timeout_s)
        self.subject = subject
        self._subject: dict[int, str] = {}
        self._reader: str | None = None

    def _latest(self) -> dict[str, object]:
        resp = self.client.get(f"/subjects/{self.subject}/versions/latest")
        resp.raise_for_status()
        body: dict[str, object] = resp.json()
        return body

    def latest(self) -> str:
        return str(self._latest()["schema"])

    def subject_writers(self) -> dict[int, str]:
        """Every schema registered under the subject, by id (TopicNameStrategy: what the topic may hold).
        Re-read when the latest version is one not seen yet, so a version registered mid-stream is known
        from the next batch on; otherwise no extra request."""
        try:
            body = self._latest()
        except httpx.HTTPError as err:
            if not self._subject or self._reader is None:
                raise
            REGISTRY_UNREACHABLE.labels(self.subject).inc()
            log.warning(
                "schema registry unreachable; decoding with the cached versions",
                extra={
                    "subject": self.subject,
                    "versions": len(self._subject),
                    "error": f"{type(err).__name__}: {err}"[:300],
                },
            )
            return dict(self._subject)
        if int(str(body["id"])) not in self._subject:
            versions = self.client.get(f"/subjects/{self.subject}/versions")
            versions.raise_for_status()
            for v in versions.json():
                resp = self.client.get(f"/subjects/{self.subject}/versions/{v}")
                resp.raise_for_status()
                self._subject[int(resp.json()["id"])] = str(resp.json()["schema"])
            self._subject[int(str(body["id"]))] = str(body["schema"])
        self._reader = str(body["schema"])
        return dict(self._subject)

    @property
    def reader(self) -> str:
        """The subject's latest schema as of the last ``subject_writers`` call."""
        if self._reader is None:
            return self.latest()
        return self._reader
