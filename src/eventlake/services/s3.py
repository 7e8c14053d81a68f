"""S3 API for the lake: moto's standalone server locally (tests, demos), MinIO/S3 in deployments.

moto keeps objects in memory: a restarted local server is empty. Use it for tests and demos;
point ``EVENTLAKE_S3_ENDPOINT`` at MinIO or S3 for anything that must persist.
"""

from __future__ import annotations

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


class S3Service(Service):
    name = "s3"
    status_key = "s3"

    def enabled(self) -> bool:
        return self.settings.s3.local or self.settings.s3.endpoint is not None

    def external_endpoint(self) -> str | None:
        return None if self.settings.s3.local else self.settings.s3.endpoint

    def check(self) -> Health:
        endpoint = self.endpoint()
        if endpoint is None:
            return Health(False, "not started")
        try:
            buckets = s3_client(self.settings, endpoint).list_buckets().get("Buckets", [])
        except (BotoCoreError, ClientError) as err:
            return Health(False, f"no answer from {endpoint}: {err}")
        return Health(True, f"{len(buckets)} bucket(s)")

    def _launch(self) -> ServiceState:
        cfg = self.settings.s3
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
            client = s3_client(self.settings, endpoint)
            client.create_bucket(Bucket=cfg.bucket)
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
