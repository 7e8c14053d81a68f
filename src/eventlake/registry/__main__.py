"""``python -m eventlake.registry --host H --port P``: serve the registry with uvicorn.

Settings come from the environment like everywhere else; ``EVENTLAKE_POSTGRES_URL`` must name
the database (the service manager passes it in the environment, never on the command line).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging

import uvicorn
from psycopg_pool import ConnectionPool

from eventlake.config import load_settings
from eventlake.logs import configure_logging
from eventlake.registry.app import create_app
from eventlake.registry.store import SchemaStore


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eventlake.registry")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    settings = load_settings()
    configure_logging("INFO")
    if settings.postgres.url is None:
        raise SystemExit("error: EVENTLAKE_POSTGRES_URL is not set; the registry stores schemas in PostgreSQL")
    cfg = settings.registry
    if not _loopback(args.host) and cfg.auth_token is None and cfg.basic_auth is None:
        raise SystemExit(
            f"error: refusing to serve the registry on {args.host} with open writes; set"
            " EVENTLAKE_REGISTRY_AUTH_TOKEN (or EVENTLAKE_REGISTRY_BASIC_AUTH), or bind 127.0.0.1"
        )
    # check_connection: a pooled connection broken by a PostgreSQL restart is replaced on its next
    # use instead of failing the request (without it every request answered 500 until a restart).
    pool = ConnectionPool(
        settings.postgres.url.get_secret_value(),
        min_size=1,
        max_size=8,
        open=True,
        timeout=30,
        check=ConnectionPool.check_connection,
        kwargs={"connect_timeout": 10},
    )
    store = SchemaStore(pool)
    app = create_app(
        store,
        token=cfg.auth_token.get_secret_value() if cfg.auth_token else None,
        basic_auth=cfg.basic_auth.get_secret_value() if cfg.basic_auth else None,
        max_body_bytes=cfg.max_body_bytes,
    )
    logging.getLogger(__name__).info("schema registry listening", extra={"host": args.host, "port": args.port})
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_config=None, workers=1)


if __name__ == "__main__":
    main()
