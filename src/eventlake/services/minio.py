"""MinIO as the local stack's S3 API: real object storage, on disk under ``<home>/minio/data``.

The binary is built from the Go module proxy by ``make setup`` (``deploy/tools.sh``, version in
``deploy/minio.version``) into ``s3.minio_bin``. ``minio server DIR --address 127.0.0.1:PORT`` runs
single-node single-drive; the bucket ``s3.bucket`` is created at start if missing, so a restart
serves the same objects.

Root credentials: ``EVENTLAKE_S3_ACCESS_KEY_ID`` / ``EVENTLAKE_S3_SECRET_ACCESS_KEY`` when set,
else a pair generated on the first start into ``<home>/minio/credentials`` (0600) that every
client in this home reads (``eventlake.lake.s3_credentials``). They reach MinIO only through its
environment; ``--quiet --anonymous`` keep them out of its log, which is JSON (``--json``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from eventlake.endpoints import Health
from eventlake.errors import ConfigError, ServiceError, SetupError
from eventlake.lake import local_credentials_file, read_local_credentials, s3_credentials
from eventlake.net import choose_port
from eventlake.services.base import ServiceState
from eventlake.services.postgres import write_secret
from eventlake.services.process import terminate
from eventlake.services.s3 import S3Service, create_bucket, s3_health

log = logging.getLogger(__name__)

#: the generated root user; MinIO wants >= 3 characters for it and >= 8 for the password
ROOT_USER = "eventlake"


class MinioService(S3Service):
    """The local MinIO server (``s3.local`` and ``s3.server`` resolving to ``minio``)."""

    name = "minio"
    status_key = "s3"
    server = "minio"

    def enabled(self) -> bool:
        return self.settings.s3.local and self.settings.s3.local_server == "minio"

    def external_endpoint(self) -> str | None:
        return None

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def root_credentials(self) -> tuple[str, str]:
        """The configured pair, else the generated one (created now if this home has none)."""
        cfg = self.settings.s3
        if cfg.access_key_id is None and cfg.secret_access_key is None:
            pair = read_local_credentials(self.settings)
            if pair is None:
                path = local_credentials_file(self.settings)
                path.parent.mkdir(parents=True, exist_ok=True)
                pair = (ROOT_USER, secrets.token_urlsafe(24))
                write_secret(path, json.dumps({"access_key_id": pair[0], "secret_access_key": pair[1]}))
                log.info("generated the local MinIO root credentials", extra={"file": str(path)})
            return pair
        pair = s3_credentials(self.settings)
        assert pair is not None  # both are set: s3_credentials raises on half a pair
        if len(pair[0]) < 3 or len(pair[1]) < 8:
            raise ConfigError(
                "MinIO needs an access key id of at least 3 and a secret of at least 8 characters",
                "set longer EVENTLAKE_S3_ACCESS_KEY_ID / EVENTLAKE_S3_SECRET_ACCESS_KEY, or unset both",
            )
        return pair

    def _launch(self) -> ServiceState:
        cfg = self.settings.s3
        binary = cfg.minio_bin
        if not os.access(binary, os.X_OK):
            raise SetupError(
                f"MinIO is not built: {binary} is missing",
                "run `make setup` (it builds MinIO in the background; `make minio` waits for it), "
                "or set EVENTLAKE_S3_SERVER=moto",
            )
        user, password = self.root_credentials()
        port = choose_port("s3", cfg.host, cfg.port, self.previous_port("s3"), "EVENTLAKE_S3_PORT")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The inherited environment minus MINIO_*: a developer's own MinIO settings must not change this one.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
        env.update(
            MINIO_ROOT_USER=user,
            MINIO_ROOT_PASSWORD=password,
            MINIO_BROWSER="off",  # no web console: nothing listens but the S3 API on loopback
            MINIO_UPDATE="off",
        )
        argv = [
            str(binary),
            "server",
            str(self.data_dir),
            "--address",
            f"{cfg.host}:{port}",
            "--quiet",
            "--anonymous",
            "--json",
        ]
        state = self.spawn_and_wait(
            argv,
            host=cfg.host,
            port=port,
            env=env,
            log_name="minio.log",
            ready=self._ready,
            timeout=cfg.start_timeout_s,
        )
        state.ports = {"s3": port}
        try:
            create_bucket(self.settings, state.endpoint)
        except (BotoCoreError, ClientError) as err:
            assert state.process is not None
            terminate(state.process)
            raise ServiceError(f"could not create bucket {cfg.bucket} on MinIO: {err}", f"see {state.log}") from err
        return state

    def _ready(self, url: str) -> Health:
        """MinIO's own readiness probe, then an authenticated request (wrong credentials fail here)."""
        try:
            resp = httpx.get(f"{url}/minio/health/ready", timeout=2)
        except httpx.HTTPError as err:
            return Health(False, f"no answer from {url}: {err}")
        if resp.status_code != 200:
            return Health(False, f"{url}/minio/health/ready answered {resp.status_code}")
        return s3_health(self.settings, url)

    def check(self) -> Health:
        endpoint = self.endpoint()
        if endpoint is None:
            return Health(False, "not started")
        return self._ready(endpoint)
