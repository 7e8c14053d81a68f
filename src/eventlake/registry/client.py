"""Registering the project's Avro schemas (``data/schemas/*.avsc``) under TopicNameStrategy subjects."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path

import httpx

from eventlake.config import Settings
from eventlake.endpoints import Health
from eventlake.errors import EventlakeError, RegistryRequestError, RegistryUnavailableError

log = logging.getLogger(__name__)

UNAVAILABLE_HINT = "check `eventlake status` (and the registry's log); it may be restarting or its PostgreSQL down"


def _detail(resp: httpx.Response) -> str:
    """The registry's own message (Confluent ``{"message"}``), else the start of the body, on one line."""
    try:
        body = resp.json()
        text = str(body.get("message", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        text = resp.text or resp.reason_phrase
    return " ".join(text.split())[:200]


def failure(url: str, request: str, resp: httpx.Response) -> RegistryRequestError:
    """The error for an answer other than 2xx: a 5xx is "unavailable" (retry later), others are the request's."""
    what = f"schema registry at {url} answered {resp.status_code} to {request}: {_detail(resp)}"
    if resp.status_code >= 500:
        return RegistryUnavailableError(what, UNAVAILABLE_HINT, status=resp.status_code)
    return RegistryRequestError(what, status=resp.status_code)


def get_json(client: httpx.Client, path: str) -> object:
    """``GET path`` on the registry: its JSON answer, or :class:`RegistryRequestError` in one line (never a
    raw ``httpx`` error, which the CLI would print as a traceback)."""
    url = str(client.base_url).rstrip("/")
    try:
        resp = client.get(path)
    except httpx.HTTPError as err:
        raise RegistryUnavailableError(
            f"schema registry at {url} did not answer GET {path}: {type(err).__name__}: {err}", UNAVAILABLE_HINT
        ) from err
    if resp.status_code != 200:
        raise failure(url, f"GET {path}", resp)
    try:
        return resp.json()
    except ValueError as err:
        raise RegistryUnavailableError(
            f"schema registry at {url} answered GET {path} with a body that is not JSON: {_detail(resp)}",
            UNAVAILABLE_HINT,
            status=resp.status_code,
        ) from err


def registry_health(url: str) -> Health:
    try:
        resp = httpx.get(f"{url}/health/ready", timeout=3)
    except httpx.HTTPError as err:
        return Health(False, f"no answer from {url}: {err}")
    if resp.status_code != 200:
        return Health(False, f"unready: {resp.text[:200]}")
    try:
        subjects = httpx.get(f"{url}/subjects", timeout=3)
        listed = subjects.json() if subjects.status_code == 200 else None
    except (httpx.HTTPError, ValueError):  # ready a moment ago: the count is a detail, not the verdict
        listed = None
    return Health(True, f"{len(listed)} subject(s)" if isinstance(listed, list) else "ok")


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
            request = f"POST /subjects/{subject}/versions ({file.name})"
            try:
                resp = client.post(f"/subjects/{subject}/versions", json={"schema": file.read_text()})
            except httpx.HTTPError as err:
                raise RegistryUnavailableError(
                    f"schema registry at {registry_url} did not answer {request}: {type(err).__name__}: {err}",
                    "run `eventlake up`, or check `eventlake status`",
                ) from err
            if resp.status_code >= 500:
                raise failure(registry_url, request, resp)
            if resp.status_code != 200:
                raise EventlakeError(
                    f"registering {file.name} as {subject} failed ({resp.status_code}): {_detail(resp)}"
                )
            try:
                body = resp.json()
            except ValueError as err:
                raise RegistryUnavailableError(
                    f"schema registry at {registry_url} answered {request} with a body that is not JSON:"
                    f" {_detail(resp)}",
                    UNAVAILABLE_HINT,
                ) from err
            done.append(Registration(subject, int(body["id"]), int(body.get("version", 0)), file))
            log.info("schema registered", extra={"subject": subject, "id": body["id"]})
    return done
