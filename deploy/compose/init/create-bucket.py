"""Create the lake's bucket on the Compose stack's MinIO (idempotent): the `minio-init` one-shot.

Reads the same EVENTLAKE_S3_* variables as eventlake itself, through its typed config model.
"""

from __future__ import annotations

import sys

import boto3
from botocore.exceptions import ClientError

from eventlake.config import load_settings


def main() -> int:
    s3 = load_settings().s3
    if s3.access_key_id is None or s3.secret_access_key is None:
        sys.stderr.write("error: EVENTLAKE_S3_ACCESS_KEY_ID and EVENTLAKE_S3_SECRET_ACCESS_KEY must be set\n")
        return 1
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id.get_secret_value(),
        aws_secret_access_key=s3.secret_access_key.get_secret_value(),
    )
    try:
        client.head_bucket(Bucket=s3.bucket)
        sys.stdout.write(f"bucket {s3.bucket} exists\n")
    except ClientError:
        client.create_bucket(Bucket=s3.bucket)
        sys.stdout.write(f"bucket {s3.bucket} created\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
