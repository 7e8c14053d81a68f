"""The request bodies of the registry API as pydantic models, so ``/openapi.json`` documents them.

The bodies are still read by ``app.json_body`` (incremental, size-limited, Confluent error codes),
then validated here; a body that does not fit answers the code a Confluent client expects for that
endpoint (42201 invalid schema, 42203 invalid compatibility, 42204 invalid mode). Unknown fields
are accepted and ignored: Confluent clients send ``metadata``/``ruleSet`` that this registry does
not implement.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from eventlake.registry.compat import Level
from eventlake.registry.store import MODES

MEDIA_TYPES = ("application/vnd.schemaregistry.v1+json", "application/json")


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class SchemaBody(_Body):
    """A schema to register, look up or test for compatibility."""

    schema_: str = Field(alias="schema", min_length=1, description="The Avro schema, as a JSON string.")
    schemaType: str | None = Field(default=None, description="AVRO (the default) is the only type served.")
    references: list[dict[str, Any]] | None = Field(default=None, description="Not supported: must be empty.")


class CompatibilityBody(_Body):
    compatibility: str = Field(json_schema_extra={"enum": [level.value for level in Level]})


class ModeBody(_Body):
    mode: str = Field(json_schema_extra={"enum": list(MODES)})


class ErrorBody(BaseModel):
    """Every error answer (Confluent's shape)."""

    error_code: int
    message: str


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the operation's required JSON body."""
    schema = model.model_json_schema(by_alias=True)
    return {"requestBody": {"required": True, "content": {t: {"schema": schema} for t in MEDIA_TYPES}}}
