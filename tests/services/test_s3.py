"""The session stack's S3 API (MinIO) as the lake's object store."""

from __future__ import annotations

from eventlake.services import Stack
from eventlake.services.lake import lake_health
from eventlake.services.s3 import s3_client
from tests.conftest import MakeSettings


def test_bucket_created_and_objects_round_trip(stack: Stack, s3_endpoint: str) -> None:
    settings = stack.settings
    client = s3_client(settings, s3_endpoint)
    assert settings.s3.bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    client.put_object(Bucket=settings.s3.bucket, Key="probe/a.txt", Body=b"hello")
    assert client.get_object(Bucket=settings.s3.bucket, Key="probe/a.txt")["Body"].read() == b"hello"


def test_s3_lake_health(stack: Stack, make_settings: MakeSettings) -> None:
    home = stack.settings.home
    ok = make_settings("s3lake", home=home, s3={"local": True}, lake={"uri": "s3://eventlake/lake"})
    assert lake_health(ok).ok
    missing = make_settings("s3lake2", home=home, s3={"local": True}, lake={"uri": "s3://no-such-bucket/lake"})
    health = lake_health(missing)
    assert not health.ok and "no-such-bucket" in health.detail
