"""A Confluent-compatible Avro Schema Registry (REST), stored in PostgreSQL.

``create_app(SchemaStore(pool))`` builds the FastAPI app; ``python -m eventlake.registry``
serves it (``eventlake up`` does that for the local stack).
"""

from eventlake.registry.app import create_app
from eventlake.registry.store import SchemaStore

__all__ = ["SchemaStore", "create_app"]
