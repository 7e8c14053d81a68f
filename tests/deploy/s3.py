"""The bucket init steps' S3 API: a real MinIO on loopback (fixture ``s3_api``), with these root credentials."""

from __future__ import annotations

import os

from tests.deploy.tooling import REPO

ACCESS_KEY, SECRET_KEY = "deploy-tests", "deploy-tests-secret"


def bucket_env(url: str, bucket: str) -> dict[str, str]:
    return {
        **os.environ,
        "EVENTLAKE_S3_ENDPOINT": url,
        "EVENTLAKE_S3_BUCKET": bucket,
        "EVENTLAKE_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "EVENTLAKE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "PYTHONPATH": str(REPO / "src"),
    }


def buckets(url: str) -> set[str]:
    import boto3  # noqa: PLC0415

    client = boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )
    return {b["Name"] for b in client.list_buckets()["Buckets"]}
