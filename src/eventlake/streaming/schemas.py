"""Writer schemas by id and the subject's latest (reader) schema, from the Schema Registry."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)


class SchemaCache:
    """Schemas are immutable per id, so ids are cached forever; ``latest`` is asked each batch."""

    def __init__(self, registry_url: str, subject: str) -> None:
        self.client = httpx.Client(base_url=registry_url, timeout=30)
        self.subject = subject
        self._by_id: dict[int, str | None] = {}
        self._subject: dict[int, str] = {}
        self._latest: str | None = None

    def latest(self) -> str:
        resp = self.client.get(f"/subjects/{self.subject}/versions/latest")
        resp.raise_for_status()
        body = resp.json()
        self._by_id[int(body["id"])] = body["schema"]
        return str(body["schema"])

    def subject_writers(self) -> dict[int, str]:
        """Every schema registered under the subject, by id (TopicNameStrategy: what the topic may hold).
        Re-read when the latest version is one not seen yet, so a version registered mid-stream is known
        from the next batch on; otherwise no extra request."""
        latest = self.client.get(f"/subjects/{self.subject}/versions/latest")
        latest.raise_for_status()
        body = latest.json()
        if int(body["id"]) not in self._subject:
            versions = self.client.get(f"/subjects/{self.subject}/versions")
            versions.raise_for_status()
            for v in versions.json():
                resp = self.client.get(f"/subjects/{self.subject}/versions/{v}")
                resp.raise_for_status()
                self._subject[int(resp.json()["id"])] = str(resp.json()["schema"])
            self._subject[int(body["id"])] = str(body["schema"])
        self._latest = str(body["schema"])
        return dict(self._subject)

    @property
    def reader(self) -> str:
        """The subject's latest schema as of the last ``subject_writers`` call."""
        if self._latest is None:
            return self.latest()
        return self._latest

    def writer(self, schema_id: int) -> str | None:
        """The schema registered under ``schema_id``; None if the registry does not know it."""
        if schema_id not in self._by_id:
            resp = self.client.get(f"/schemas/ids/{schema_id}")
            if resp.status_code == 404:
                log.warning("unknown schema id", extra={"subject": self.subject, "schema_id": schema_id})
                self._by_id[schema_id] = None
            else:
                resp.raise_for_status()
                self._by_id[schema_id] = resp.json()["schema"]
        return self._by_id[schema_id]
