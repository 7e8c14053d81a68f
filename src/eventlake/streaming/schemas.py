"""Writer schemas by id and the subject's latest (reader) schema, from the Schema Registry."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)


class SchemaCache:
    """The subject's schemas by id (immutable, so cached forever); the latest is asked each batch."""

    def __init__(self, registry_url: str, subject: str) -> None:
        self.client = httpx.Client(base_url=registry_url, timeout=30)
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
        body = self._latest()
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
