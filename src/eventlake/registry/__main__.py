"""``python -m eventlake.registry --host H --port P``: serve the registry with uvicorn.

Settings come from the environment like everywhere else; ``EVENTLAKE_POSTGRES_URL`` must name
the database (the service manager passes it in the environment, never on the command line).
"""

from __future__ import annotations

import argparse
import logging

import psycopg
import uvicorn

from eventlake.config import load_settings
from eventlake.errors import ConfigError
from eventlake.logs import configure_logging
from eventlake.registry.app import create_app
from eventlake.registry.binding import require_write_auth
from eventlake.registry.store import SchemaStore, open_pool


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
    try:
        require_write_auth(args.host, cfg)
    except ConfigError as err:
        raise SystemExit(f"error: {err}") from None
    pool = open_pool(settings.postgres.url.get_secret_value())
    try:
        pool.wait(timeout=30)  # start-up may wait longer for the first connection than a request does
        store = SchemaStore(pool)
    except psycopg.OperationalError as err:  # the URL is never printed: it holds the password
        first = (str(err).splitlines() or [type(err).__name__])[0][:300]
        raise SystemExit(f"error: PostgreSQL does not answer ({first}); run `eventlake up`") from None
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
