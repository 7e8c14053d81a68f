"""Registering the project's Avro schemas (``data/schemas/*.avsc``) under TopicNameStrategy subjects."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path

import httpx

from eventlake.config import Settings
from eventlake.endpoints import Health
from eventlake.errors import EventlakeError, UnreachableError

log = logging.getLogger(__name__)


def registry_health(url: str) -> Health:
    try:
        resp = httpx.get(f"{url}/health/ready", timeout=3)
    except httpx.HTTPError as err:
        return Health(False, f"no answer from {url}: {err}")
    if resp.status_code != 200:
        return Health(False, f"unready: {resp.text[:200]}")
    subjects = httpx.get(f"{url}/subjects", timeout=3)
    return Health(True, f"{len(subjects.json())} subject(s)" if subjects.status_code == 200 else "ok")


@dataclass(frozen=True)
class Registration:
    subject: str
    id: int
    version: int
    file: Path


def auth_headers(settings: Settings) -> dict[str, str]:
    """Credentials for registry writes, from config (bearer token preferred over basic auth)."""
    cfg = settings.registry
    if cfg.auth_token is not None:
        return {"Authorization": f"Bearer {cfg.auth_token.get_secret_value()}"}
    if cfg.basic_auth is not None:
        return {"Authorization": "Basic " + base64.b64encode(cfg.basic_auth.get_secret_value().encode()).decode()}
    return {}


def register_schemas(settings: Settings, registry_url: str, schemas_dir: Path | None = None) -> list[Registration]:
    """Register every ``<source>.avsc`` as subject ``<raw topic of source>-value``; idempotent.

    Raises :class:`EventlakeError` naming the file on an invalid or incompatible schema.
    """
    folder = schemas_dir or settings.schemas_dir
    files = sorted(folder.glob("*.avsc"))
    if not files:
        raise EventlakeError(f"no *.avsc files in {folder}", "add schemas or set EVENTLAKE_SCHEMAS_DIR")
    done = []
    with httpx.Client(base_url=registry_url, headers=auth_headers(settings), timeout=30) as client:
        for file in files:
            subject = f"{settings.topics.raw(file.stem)}-value"
            try:
                resp = client.post(f"/subjects/{subject}/versions", json={"schema": file.read_text()})
            except httpx.HTTPError as err:
                raise UnreachableError(f"schema registry at {registry_url}: {err}", "run `eventlake up`") from err
            if resp.status_code != 200:
                detail = resp.json().get("message", resp.text) if resp.content else resp.reason_phrase
                raise EventlakeError(f"registering {file.name} as {subject} failed ({resp.status_code}): {detail}")
            body = resp.json()
            done.append(Registration(subject, int(body["id"]), int(body.get("version", 0)), file))
            log.info("schema registered", extra={"subject": subject, "id": body["id"]})
    return done
