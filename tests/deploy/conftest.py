"""Fixtures of tests/deploy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlake.services.minio import MinioService
from tests.conftest import MakeSettings
from tests.deploy.s3 import ACCESS_KEY, SECRET_KEY


@pytest.fixture(scope="session")
def s3_api(make_settings: MakeSettings, minio_bin: Path) -> Iterator[str]:
    """A real MinIO (the server the Compose stack and the chart's dev values run) on loopback."""
    settings = make_settings(
        "deploy-s3",
        s3={
            "local": True,
            "server": "minio",
            "minio_bin": minio_bin,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "bucket": "deploy-tests",
        },
    )
    service = MinioService(settings)
    state = service.start()
    assert state.endpoint is not None
    try:
        yield state.endpoint
    finally:
        service.stop()
