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

    def latest(self) -> str:
        resp = self.client.get(f"/subjects/{self.subject}/versions/latest")
        resp.raise_for_status()
        body = resp.json()
        self._by_id[int(body["id"])] = body["schema"]
        return str(body["schema"])

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
