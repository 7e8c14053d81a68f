"""The REST API: the Avro subset of the Confluent Schema Registry API.

Stock Confluent clients (``confluent_kafka.schema_registry``) work against it unchanged.
Reads are open; writes (register, delete, config and mode changes) need the bearer token or
basic-auth credentials when either is configured.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from eventlake.registry import errors
from eventlake.registry.bodies import CompatibilityBody, ErrorBody, ModeBody, SchemaBody, request_body
from eventlake.registry.errors import RegistryError
from eventlake.registry.store import GLOBAL, Registered, SchemaStore

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
DEFAULT_MAX_BODY = 1024 * 1024


class RegistryJSON(JSONResponse):
    """JSON in the registry's media type, ASCII-escaped: a lone surrogate echoed from a request (valid
    JSON, ``"\\ud800"``) cannot be encoded as UTF-8 and made the answer a 500."""

    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _error(err: RegistryError) -> RegistryJSON:
    headers = {"WWW-Authenticate": 'Basic realm="eventlake-registry", Bearer'} if err.status == 401 else None
    return RegistryJSON({"error_code": err.error_code, "message": err.message}, status_code=err.status, headers=headers)


def _registered(r: Registered) -> dict[str, Any]:
    out: dict[str, Any] = {"subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema}
    if r.schema_type != "AVRO":
        out["schemaType"] = r.schema_type
    return out


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read incrementally up to the app's size limit."""
    limit: int = request.app.state.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise errors.too_large(limit)
    try:
        parsed = json.loads(bytes(body))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise errors.bad_request(f"Malformed JSON request body: {err}") from err
    except RecursionError as err:  # [[[[... a few thousand deep: the parser's stack, not a 500
        raise errors.bad_request("Malformed JSON request body: nested too deeply") from err
    if not isinstance(parsed, dict):
        raise errors.bad_request("Request body must be a JSON object")
    return parsed


def require_writer(request: Request) -> None:
    """Writes need the bearer token or basic-auth credentials, when either is configured."""
    token: str | None = request.app.state.token
    basic_auth: str | None = request.app.state.basic_auth
    if token is None and basic_auth is None:
        return
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if token is not None and scheme.lower() == "bearer" and secrets.compare_digest(value.strip(), token):
        return
    if basic_auth is not None and scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            given = ""
        if secrets.compare_digest(given, basic_auth):
            return
    raise errors.unauthorized()


def _validated(model: type[M], body: dict[str, Any], error: Callable[[str], RegistryError]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise error(f"{where}: {first['msg']}") from None


async def schema_body(body: Annotated[dict[str, Any], Depends(json_body)]) -> SchemaBody:
    parsed = _validated(SchemaBody, body, errors.invalid_schema)
    if parsed.references:
        raise errors.invalid_schema("schema references are not supported")
    if not parsed.schema_.strip():
        raise errors.invalid_schema("the request needs a non-empty string field 'schema'")
    return parsed


async def compatibility_body(body: Annotated[dict[str, Any], Depends(json_body)]) -> CompatibilityBody:
    return _validated(CompatibilityBody, body, lambda _: errors.invalid_compatibility(body.get("compatibility")))


async def mode_body(body: Annotated[dict[str, Any], Depends(json_body)]) -> ModeBody:
    return _validated(ModeBody, body, lambda _: errors.invalid_mode(body.get("mode")))


SchemaIn = Annotated[SchemaBody, Depends(schema_body)]
CompatibilityIn = Annotated[CompatibilityBody, Depends(compatibility_body)]
ModeIn = Annotated[ModeBody, Depends(mode_body)]
Writer = Depends(require_writer)
#: Schema ids are int32 in Confluent's API (and a PostgreSQL integer here): a larger one is a 422.
SchemaId = Annotated[int, Path(ge=0, le=2**31 - 1)]


def get_store(request: Request) -> SchemaStore:
    store: SchemaStore = request.app.state.store
    return store


Store = Annotated[SchemaStore, Depends(get_store)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what}
    for code, what in (
        (400, "Malformed request body"),
        (401, "Missing or wrong credentials (writes)"),
        (404, "Subject, version or schema not found"),
        (409, "Incompatible schema"),
        (413, "Request body too large"),
        (422, "Invalid schema, version, level, mode or parameter"),
        (503, "The schema storage (PostgreSQL) is unavailable: retry"),
    )
}
router = APIRouter(responses=ERRORS)


def schema_of(body: SchemaBody) -> tuple[str, str]:
    return body.schema_, body.schemaType or "AVRO"


# -- health and metrics -------------------------------------------------------------------
@router.get("/", include_in_schema=False)
def root() -> dict[str, Any]:
    return {}


@router.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health")
@router.get("/health/ready")
def ready(store: Store) -> Response:
    try:
        store.ping()
    except Exception as err:
        log.warning("registry not ready", extra={"err": str(err)})
        return RegistryJSON({"status": "unready", "postgres": str(err).splitlines()[0][:200]}, status_code=503)
    return RegistryJSON({"status": "ok", "postgres": "ok"})


@router.get("/metrics", response_class=PlainTextResponse)
def prometheus(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)


# -- schemas ------------------------------------------------------------------------------
@router.get("/schemas/types")
def schema_types() -> list[str]:
    return ["AVRO"]


@router.get("/schemas/ids/{schema_id}")
def schema_by_id(store: Store, schema_id: SchemaId, subject: str | None = None) -> dict[str, Any]:
    schema, schema_type = store.schema_by_id(schema_id)
    return {"schema": schema} if schema_type == "AVRO" else {"schema": schema, "schemaType": schema_type}


@router.get("/schemas/ids/{schema_id}/schema")
def raw_schema_by_id(store: Store, schema_id: SchemaId) -> Response:
    return Response(store.schema_by_id(schema_id)[0], media_type=MEDIA_TYPE)


@router.get("/schemas/ids/{schema_id}/versions")
def versions_of_id(store: Store, schema_id: SchemaId, deleted: bool = False) -> list[dict[str, Any]]:
    return [{"subject": s, "version": v} for s, v in store.versions_of_id(schema_id, deleted)]


@router.get("/schemas/ids/{schema_id}/subjects")
def subjects_of_id(store: Store, schema_id: SchemaId, deleted: bool = False) -> list[str]:
    return sorted({s for s, _ in store.versions_of_id(schema_id, deleted)})


# -- subjects -----------------------------------------------------------------------------
@router.get("/subjects")
def subjects(store: Store, deleted: bool = False) -> list[str]:
    return store.subjects(deleted)


@router.get("/subjects/{subject}/versions")
def versions(store: Store, subject: str, deleted: bool = False) -> list[int]:
    return store.versions(subject, deleted)


@router.get("/subjects/{subject}/versions/{version}")
def get_version(store: Store, subject: str, version: str, deleted: bool = False) -> dict[str, Any]:
    return _registered(store.get_version(subject, version, deleted))


@router.get("/subjects/{subject}/versions/{version}/schema")
def get_version_schema(store: Store, subject: str, version: str, deleted: bool = False) -> Response:
    return Response(store.get_version(subject, version, deleted).schema, media_type=MEDIA_TYPE)


@router.post("/subjects/{subject}/versions", dependencies=[Writer], openapi_extra=request_body(SchemaBody))
def register(store: Store, subject: str, body: SchemaIn, normalize: bool = False) -> dict[str, Any]:
    schema, schema_type = schema_of(body)
    r = store.register(subject, schema, schema_type)
    log.info("schema registered", extra={"subject": subject, "version": r.version, "id": r.id})
    return {"id": r.id, "version": r.version, "subject": r.subject}


@router.post("/subjects/{subject}", openapi_extra=request_body(SchemaBody))
def lookup(
    store: Store, subject: str, body: SchemaIn, normalize: bool = False, deleted: bool = False
) -> dict[str, Any]:
    schema, _ = schema_of(body)
    return _registered(store.lookup(subject, schema, deleted))


@router.delete("/subjects/{subject}", dependencies=[Writer])
def delete_subject(store: Store, subject: str, permanent: bool = False) -> list[int]:
    return store.delete_subject(subject, permanent)


@router.delete("/subjects/{subject}/versions/{version}", dependencies=[Writer])
def delete_version(store: Store, subject: str, version: str, permanent: bool = False) -> int:
    return store.delete_version(subject, version, permanent)


# -- compatibility ------------------------------------------------------------------------
def _compat_result(problems: list[str], verbose: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        out["messages"] = problems
    return out


@router.post("/compatibility/subjects/{subject}/versions/{version}", openapi_extra=request_body(SchemaBody))
def compatibility(store: Store, subject: str, version: str, body: SchemaIn, verbose: bool = False) -> dict[str, Any]:
    schema, _ = schema_of(body)
    return _compat_result(store.test_compatibility(subject, schema, version), verbose)


@router.post("/compatibility/subjects/{subject}/versions", openapi_extra=request_body(SchemaBody))
def compatibility_all(store: Store, subject: str, body: SchemaIn, verbose: bool = False) -> dict[str, Any]:
    schema, _ = schema_of(body)
    return _compat_result(store.test_compatibility(subject, schema, None), verbose)


# -- config and mode ----------------------------------------------------------------------
@router.get("/config")
def get_global_config(store: Store) -> dict[str, str]:
    return {"compatibilityLevel": store.get_level(GLOBAL).value}


@router.put("/config", dependencies=[Writer], openapi_extra=request_body(CompatibilityBody))
def put_global_config(store: Store, body: CompatibilityIn) -> dict[str, str]:
    return {"compatibility": store.set_level(body.compatibility, GLOBAL).value}


@router.get("/config/{subject}")
def get_config(store: Store, subject: str, defaultToGlobal: bool = False) -> dict[str, str]:
    return {"compatibilityLevel": store.get_level(subject, defaultToGlobal).value}


@router.put("/config/{subject}", dependencies=[Writer], openapi_extra=request_body(CompatibilityBody))
def put_config(store: Store, subject: str, body: CompatibilityIn) -> dict[str, str]:
    return {"compatibility": store.set_level(body.compatibility, subject).value}


@router.delete("/config/{subject}", dependencies=[Writer])
def delete_config(store: Store, subject: str) -> dict[str, str]:
    return {"compatibilityLevel": store.delete_level(subject).value}


@router.get("/mode")
def get_mode(store: Store) -> dict[str, str]:
    return {"mode": store.get_mode(GLOBAL)}


@router.put("/mode", dependencies=[Writer], openapi_extra=request_body(ModeBody))
def put_mode(store: Store, body: ModeIn, force: bool = False) -> dict[str, str]:
    return {"mode": store.set_mode(body.mode, GLOBAL)}


@router.get("/mode/{subject}")
def get_subject_mode(store: Store, subject: str) -> dict[str, str]:
    return {"mode": store.get_mode(subject)}


@router.put("/mode/{subject}", dependencies=[Writer], openapi_extra=request_body(ModeBody))
def put_subject_mode(store: Store, subject: str, body: ModeIn, force: bool = False) -> dict[str, str]:
    return {"mode": store.set_mode(body.mode, subject)}


def create_app(
    store: SchemaStore,
    *,
    token: str | None = None,
    basic_auth: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
) -> FastAPI:
    """Build the registry app over ``store``. ``token``/``basic_auth`` ("user:password") protect writes."""
    app = FastAPI(title="eventlake schema registry", default_response_class=RegistryJSON, docs_url=None, redoc_url=None)
    app.state.token = token
    app.state.basic_auth = basic_auth
    app.state.max_body_bytes = max_body_bytes
    app.state.store = store
    app.include_router(router)
    app.state.metrics = metrics = CollectorRegistry()
    requests_total = Counter(
        "eventlake_registry_requests_total",
        "Registry HTTP requests",
        ["endpoint", "method", "status"],
        registry=metrics,
    )
    latency = Histogram(
        "eventlake_registry_request_duration_seconds", "Registry request latency", ["endpoint"], registry=metrics
    )

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        requests_total.labels(endpoint, request.method, str(response.status_code)).inc()
        latency.labels(endpoint).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(RegistryError)
    async def registry_error(_request: Request, err: RegistryError) -> Response:
        if err.status >= 500:
            log.error("registry error", extra={"code": err.error_code, "detail": err.message})
        return _error(err)

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(psycopg.InterfaceError)
    async def storage_down(request: Request, err: Exception) -> Response:
        # Refused, reset, timed out waiting for a pooled connection, the server shutting down: the
        # database is (briefly) gone. Clients retry a 503; the pool reconnects by itself.
        detail = (str(err).splitlines() or [type(err).__name__])[0][:200]
        log.warning(
            "PostgreSQL unavailable", extra={"path": request.url.path, "error": f"{type(err).__name__}: {detail}"}
        )
        return _error(errors.storage_unavailable(f"{type(err).__name__}: {detail}"))

    @app.exception_handler(psycopg.DataError)
    async def unstorable(request: Request, err: psycopg.DataError) -> Response:
        # A value PostgreSQL cannot hold (a NUL character in a subject, ...): the request's fault.
        log.info("value not storable", extra={"path": request.url.path, "error": str(err).splitlines()[0][:200]})
        return _error(errors.bad_request(f"Value cannot be stored: {str(err).splitlines()[0][:200]}"))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, err: RequestValidationError) -> Response:
        first = err.errors()[0] if err.errors() else {"msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(RegistryError(422, 422, f"{where}: {first['msg']}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException) -> Response:
        return _error(RegistryError(err.status_code, err.status_code, f"HTTP {err.status_code} {err.detail}"))

    return app
