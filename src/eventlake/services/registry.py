"""The Schema Registry as a managed service: ``python -m eventlake.registry`` under uvicorn.

It stores schemas in PostgreSQL, so it starts after PostgreSQL and gets the database URL through
its environment (never its command line, which ``ps`` shows).
"""

from __future__ import annotations

import os

from eventlake.endpoints import Health
from eventlake.errors import UnreachableError
from eventlake.net import choose_port
from eventlake.registry.binding import require_write_auth
from eventlake.registry.client import registry_health
from eventlake.services.base import Service, ServiceState
from eventlake.services.postgres import PostgresService


class RegistryService(Service):
    name = "schema_registry"
    status_key = "schema_registry"

    def enabled(self) -> bool:
        return self.settings.registry.enabled or self.settings.registry.url is not None

    def external_endpoint(self) -> str | None:
        return self.settings.registry.url

    def check(self) -> Health:
        url = self.endpoint()
        return registry_health(url) if url else Health(False, "not started")

    def _launch(self) -> ServiceState:
        cfg = self.settings.registry
        require_write_auth(cfg.host, cfg)  # before anything starts: one line naming the setting
        pg_url = PostgresService(self.settings).endpoint()
        if pg_url is None:
            raise UnreachableError("the Schema Registry needs PostgreSQL, which is not running", "run `eventlake up`")
        port = choose_port("schema registry", cfg.host, cfg.port, self.previous_port("http"), "EVENTLAKE_REGISTRY_PORT")
        env = {
            **os.environ,
            "EVENTLAKE_HOME": str(self.settings.home),
            "EVENTLAKE_JARS_DIR": str(self.settings.jars_dir),
            "EVENTLAKE_POSTGRES_URL": pg_url,
            "EVENTLAKE_REGISTRY_MAX_BODY_BYTES": str(cfg.max_body_bytes),
        }
        for key, secret in (("AUTH_TOKEN", cfg.auth_token), ("BASIC_AUTH", cfg.basic_auth)):
            if secret is not None:
                env[f"EVENTLAKE_REGISTRY_{key}"] = secret.get_secret_value()
        return self.spawn_http(
            "eventlake.registry", host=cfg.host, port=port, env=env, log_name="registry.log", ready=registry_health
        )
