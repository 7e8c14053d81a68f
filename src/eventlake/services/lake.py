"""The lake root: a local directory (``file://``) or an S3 bucket (``s3://``, MinIO/moto/AWS)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from eventlake.config import Settings
from eventlake.endpoints import Health
from eventlake.lake import local_path
from eventlake.services.minio import MinioService
from eventlake.services.s3 import S3Service, s3_client


def local_s3_service(settings: Settings) -> S3Service:
    """The local S3 server ``s3.server`` resolves to: MinIO, or moto."""
    return MinioService(settings) if settings.s3.local_server == "minio" else S3Service(settings)


def s3_endpoint(settings: Settings) -> str | None:
    """The S3 endpoint in force: the local server's, the configured one, or None (AWS default)."""
    return local_s3_service(settings).endpoint() if settings.s3.local else settings.s3.endpoint


def ensure_lake(settings: Settings) -> None:
    """Create a local lake root (an S3 lake's bucket is created by the S3 service or exists)."""
    uri = settings.lake_uri
    if uri.startswith("file://"):
        local_path(uri).mkdir(parents=True, exist_ok=True)


def lake_health(settings: Settings) -> Health:
    uri = settings.lake_uri
    if uri.startswith("file://"):
        path = local_path(uri)
        if path.is_dir():
            return Health(os.access(path, os.W_OK), "writable" if os.access(path, os.W_OK) else "not writable")
        return Health(False, f"{path} does not exist (run `eventlake up`)")
    bucket = urlsplit(uri).netloc
    endpoint = s3_endpoint(settings)
    try:
        s3_client(settings, endpoint).head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as err:
        return Health(False, f"bucket {bucket} at {endpoint or 'AWS'}: {err}")
    return Health(True, f"bucket {bucket} reachable")


def lake_status(settings: Settings) -> dict[str, Any]:
    health = lake_health(settings)
    return {"uri": settings.lake_uri, "ok": health.ok, "detail": health.detail}
