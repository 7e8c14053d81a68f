"""Local service manager: Kafka (KRaft), PostgreSQL, S3 server, Schema Registry, Kafka Connect, and
the operations stack (Prometheus, Alertmanager).

``Stack(settings).up()`` starts them on 127.0.0.1 (free ports), ``status()`` reports them,
``down()`` stops exactly what was started. :func:`endpoints` tells clients where they are.
"""

from __future__ import annotations

from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.errors import UnreachableError
from eventlake.services.kafka import KafkaService
from eventlake.services.lake import s3_endpoint
from eventlake.services.manager import EXTERNAL_ENV, Stack
from eventlake.services.postgres import PostgresService
from eventlake.services.registry import RegistryService

__all__ = ["Endpoints", "Stack", "endpoints"]


def _need(value: str | None, component: str) -> str:
    if value is None:
        raise UnreachableError(f"{component} is not running", f"run `eventlake up`, or set {EXTERNAL_ENV[component]}")
    return value


def endpoints(settings: Settings) -> Endpoints:
    """Resolve endpoints from config (external) or from what `eventlake up` recorded."""
    return Endpoints(
        kafka_bootstrap=_need(KafkaService(settings).endpoint(), "kafka"),
        postgres_url=_need(PostgresService(settings).endpoint(), "postgres"),
        registry_url=_need(RegistryService(settings).endpoint(), "schema_registry"),
        lake_uri=settings.lake_uri,
        s3_endpoint=s3_endpoint(settings),
    )
