"""Where each component answers and whether it does: plain values that library code passes around.

The local stack (``eventlake.services``) resolves them; deployments configure them. Library code
takes them as arguments and never asks the stack itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Endpoints:
    """Where each component answers, for clients (producers, jobs, tests)."""

    kafka_bootstrap: str
    postgres_url: str
    registry_url: str
    lake_uri: str
    s3_endpoint: str | None
