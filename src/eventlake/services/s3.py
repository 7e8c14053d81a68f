"""S3 API for the lake: an external endpoint, or a local server run by eventlake.

The local server is MinIO (``eventlake.services.minio``, objects on disk) unless ``s3.server``
resolves to ``moto``: moto's standalone server, which keeps objects in memory (a restarted server is
empty) and stays for tests that inject S3 faults. ``eventlake.services.lake.local_s3_service`` picks the one in force.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from eventlake.config import Settings
from eventlake.endpoints import Health
from eventlake.errors import ServiceError
from eventlake.lake import s3_credentials
from eventlake.net import choose_port, port_accepts
from eventlake.services.base import Service, ServiceState
from eventlake.services.process import spawn, terminate, wait_until

log = logging.getLogger(__name__)


def s3_client(settings: Settings, endpoint: str | None) -> Any:
    cfg = settings.s3
    key, secret = s3_credentials(settings) or (None, None)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=cfg.region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=BotoConfig(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2}),
    )


def s3_health(settings: Settings, endpoint: str) -> Health:
    """Does the S3 API at ``endpoint`` answer an authenticated request (list buckets)?"""
    try:
        buckets = s3_client(settings, endpoint).list_buckets().get("Buckets", [])
    except (BotoCoreError, ClientError) as err:
        return Health(False, f"no answer from {endpoint}: {err}")
    return Health(True, f"{len(buckets)} bucket(s)")


def create_bucket(settings: Settings, endpoint: str) -> None:
    """Create ``s3.bucket`` unless it exists (idempotent: a restarted MinIO still has it)."""
    client = s3_client(settings, endpoint)
    try:
        client.create_bucket(Bucket=settings.s3.bucket)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


class S3Service(Service):
    """The lake's S3 API when it is external (``s3.endpoint``) or the local moto server."""

    name = "s3"
    status_key = "s3"
    #: what ``status --json`` reports as ``s3.server``
    server = "moto"

    def enabled(self) -> bool:
        cfg = self.settings.s3
        return cfg.local_server == "moto" if cfg.local else cfg.endpoint is not None

    def external_endpoint(self) -> str | None:
        return None if self.settings.s3.local else self.settings.s3.endpoint

    def check(self) -> Health:
        endpoint = self.endpoint()
        if endpoint is None:
            return Health(False, "not started")
        return s3_health(self.settings, endpoint)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "server": self.server if self.managed else "external"}

    def _launch(self) -> ServiceState:
        cfg = self.settings.s3
        if cfg.server == "auto":  # not asked for: say why the lake's objects will not outlive this server
            log.warning(
                "MinIO is not built; the local S3 server is moto, which keeps objects in memory",
                extra={"minio_bin": str(cfg.minio_bin), "hint": "make minio"},
            )
        port = choose_port("s3", cfg.host, cfg.port, self.previous_port("s3"), "EVENTLAKE_S3_PORT")
        out = self.dir / "moto.log"
        ref = spawn([sys.executable, "-m", "moto.server", "-H", cfg.host, "-p", str(port)], out)
        endpoint = f"http://{cfg.host}:{port}"
        if not wait_until(
            lambda: port_accepts(cfg.host, port), timeout=30, abort=lambda: None if ref.alive() else "exited"
        ):
            terminate(ref)
            raise ServiceError("the local S3 server (moto) failed to start", f"see {out}")
        try:
            create_bucket(self.settings, endpoint)
        except (BotoCoreError, ClientError) as err:
            terminate(ref)
            raise ServiceError(f"could not create bucket {cfg.bucket} on the local S3 server: {err}") from err
        return ServiceState(
            name=self.name,
            endpoint=endpoint,
            ports={"s3": port},
            log=str(out),
            host=cfg.host,
            pid=ref.pid,
            create_time=ref.create_time,
        )
