"""An S3 API on loopback (moto's server, the project's stand-in for MinIO in tests) for the bucket init steps."""

from __future__ import annotations

import os

from tests.deploy.tooling import REPO


def bucket_env(url: str, bucket: str) -> dict[str, str]:
    return {
        **os.environ,
        "EVENTLAKE_S3_ENDPOINT": url,
        "EVENTLAKE_S3_BUCKET": bucket,
        "EVENTLAKE_S3_ACCESS_KEY_ID": "test-key",
        "EVENTLAKE_S3_SECRET_ACCESS_KEY": "test-secret",
        "PYTHONPATH": str(REPO / "src"),
    }


def buckets(url: str) -> set[str]:
    import boto3  # noqa: PLC0415

    client = boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    return {b["Name"] for b in client.list_buckets()["Buckets"]}
