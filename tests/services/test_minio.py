"""The local MinIO (the stack's S3 API): real objects on disk, real credentials, never logged."""

from __future__ import annotations

import io
import json
import logging
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from eventlake.config import Settings
from eventlake.errors import ConfigError, SetupError
from eventlake.lake import local_credentials_file, s3_credentials
from eventlake.net import port_is_free
from eventlake.services import Stack
from eventlake.services.lake import lake_health, local_s3_service
from eventlake.services.minio import MinioService
from eventlake.services.s3 import S3Service, s3_client
from tests.conftest import MakeSettings
from tests.minio import wait_for_minio


def minio_settings(make_settings: MakeSettings, minio_bin: Path, name: str = "minio", **s3: Any) -> Settings:
    return make_settings(
        name,
        s3={"local": True, "server": "minio", "minio_bin": minio_bin, **s3},
        lake={"uri": "s3://eventlake/lake"},
    )


def keys(client: Any, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_minio_serves_s3_keeps_objects_on_disk_across_a_restart_and_stops(
    make_settings: MakeSettings, minio_bin: Path
) -> None:
    settings = minio_settings(make_settings, minio_bin)
    bucket = settings.s3.bucket
    svc = MinioService(settings)
    assert svc.enabled() and svc.managed and isinstance(local_s3_service(settings), MinioService)
    stack = Stack(settings)
    big = bytes(range(256)) * (24 * 1024)  # 6 MiB: boto3 uploads it in parts (multipart upload)
    try:
        state = svc.start()
        host, port = state.host, state.ports["s3"]
        assert host == "127.0.0.1" and state.endpoint == f"http://127.0.0.1:{port}"
        client = s3_client(settings, state.endpoint)
        assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]  # created at start
        for i in range(3):
            client.put_object(Bucket=bucket, Key=f"probe/{i}.txt", Body=f"object {i}".encode())
        parts = TransferConfig(multipart_threshold=5 << 20)
        client.upload_fileobj(io.BytesIO(big), bucket, "probe/big.bin", Config=parts)
        assert keys(client, bucket, "probe/") == ["probe/0.txt", "probe/1.txt", "probe/2.txt", "probe/big.bin"]
        assert client.get_object(Bucket=bucket, Key="probe/1.txt")["Body"].read() == b"object 1"
        assert lake_health(settings).ok  # the s3:// lake's bucket answers

        status = stack.status()["s3"]
        assert status["ok"] is True and status["server"] == "minio" and status["url"] == state.endpoint
        assert status["managed"] is True and status["pid"] == state.pid

        # Real authentication, unlike moto: a wrong secret is refused.
        key, secret = s3_credentials(settings) or ("", "")
        wrong = boto3.client(
            "s3",
            endpoint_url=state.endpoint,
            region_name=settings.s3.region,
            aws_access_key_id=key,
            aws_secret_access_key="not-the-secret",
        )
        with pytest.raises(ClientError) as refused:
            wrong.list_objects_v2(Bucket=bucket)
        assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"

        # The generated credentials: owner-only file, never in the log or the status.
        creds = local_credentials_file(settings)
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert json.loads(creds.read_text()) == {"access_key_id": key, "secret_access_key": secret}
        assert len(secret) >= 24
        log_text = Path(state.log).read_text()
        assert secret not in log_text and secret not in json.dumps(status)
        assert all(json.loads(line) for line in log_text.splitlines() if line.strip())  # structured (JSON) log

        # Restart: same port, same credentials, the objects are still there (they are on disk).
        assert svc.stop() is True
        assert port_is_free(host, port) and svc.running_process() is None
        assert stack.status()["s3"]["ok"] is False
        assert (svc.data_dir / bucket / "probe").is_dir()
        state = svc.start()
        assert state.ports["s3"] == port
        client = s3_client(settings, state.endpoint)
        assert keys(client, bucket, "probe/") == ["probe/0.txt", "probe/1.txt", "probe/2.txt", "probe/big.bin"]
        assert client.get_object(Bucket=bucket, Key="probe/big.bin")["Body"].read() == big
        assert s3_credentials(settings) == (key, secret)
    finally:
        stopped = stack.down()
    assert stopped == ["minio"]
    assert port_is_free(host, port) and svc.running_process() is None
    assert stack.down() == []  # safe twice


def test_configured_credentials_become_minio_root_credentials(make_settings: MakeSettings, minio_bin: Path) -> None:
    settings = minio_settings(
        make_settings, minio_bin, "minio-keys", access_key_id="lake-admin", secret_access_key="configured-secret-1"
    )
    svc = MinioService(settings)
    try:
        state = svc.start()
        client = s3_client(settings, state.endpoint)
        client.put_object(Bucket=settings.s3.bucket, Key="k", Body=b"v")
        assert client.get_object(Bucket=settings.s3.bucket, Key="k")["Body"].read() == b"v"
        assert not local_credentials_file(settings).exists()  # nothing generated
        assert "configured-secret-1" not in Path(state.log).read_text()
    finally:
        svc.stop()
    short = minio_settings(make_settings, minio_bin, "minio-short", access_key_id="ab", secret_access_key="short")
    with pytest.raises(ConfigError, match=r"at least 3 .* at least 8 characters"):
        MinioService(short).start()


def test_server_choice_minio_when_built_else_moto(make_settings: MakeSettings, minio_bin: Path, tmp_path: Path) -> None:
    def s3_services(settings: Settings) -> list[type]:
        return [type(s) for s in Stack(settings).active() if s.status_key == "s3"]

    auto = make_settings("auto", s3={"local": True, "server": "auto", "minio_bin": minio_bin})
    assert auto.s3.local_server == "minio" and s3_services(auto) == [MinioService]
    unbuilt = make_settings("unbuilt", s3={"local": True, "server": "auto", "minio_bin": tmp_path / "no-minio"})
    assert unbuilt.s3.local_server == "moto" and s3_services(unbuilt) == [S3Service]
    external = make_settings("ext", s3={"local": False, "endpoint": "http://s3.example:9000"})
    assert s3_services(external) == [S3Service] and not Stack(external).service("s3").managed
    assert s3_services(make_settings("none", s3={"local": False})) == []

    # Asked for MinIO that is not built: one clear error, nothing started, nothing recorded.
    missing = make_settings("missing", s3={"local": True, "server": "minio", "minio_bin": tmp_path / "no-minio"})
    svc = MinioService(missing)
    with pytest.raises(SetupError, match="MinIO is not built") as err:
        svc.start()
    assert "make setup" in (err.value.hint or "") and svc.load_state() is None


@pytest.mark.parametrize("server", ["moto", "auto"])
def test_moto_stays_available_for_fault_tests(
    make_settings: MakeSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture, server: str
) -> None:
    """Asked for (s3.server=moto) it starts quietly; as the fall-back of `auto` it warns that it is in memory."""
    settings = make_settings(f"moto-{server}", s3={"local": True, "server": server, "minio_bin": tmp_path / "none"})
    svc = local_s3_service(settings)
    assert type(svc) is S3Service
    try:
        with caplog.at_level(logging.WARNING, logger="eventlake.services.s3"):
            state = svc.start()
        client = s3_client(settings, state.endpoint)
        client.put_object(Bucket=settings.s3.bucket, Key="k", Body=b"v")
        assert client.get_object(Bucket=settings.s3.bucket, Key="k")["Body"].read() == b"v"
        assert svc.status()["server"] == "moto"
    finally:
        svc.stop()
    warned = [r for r in caplog.records if "MinIO is not built" in r.getMessage()]
    assert len(warned) == (1 if server == "auto" else 0)


def test_tests_wait_for_a_running_minio_build_and_fail_on_a_failed_one(tmp_path: Path) -> None:
    """`make setup` leaves the MinIO build running: the tests wait for it, and fail (never skip) without it."""
    tools = tmp_path / "tools"
    binary = tools / "bin" / "minio"
    binary.parent.mkdir(parents=True)
    held = tmp_path / "held"
    # A build in progress holds the lock, as deploy/tools.sh does; the binary appears when it ends.
    build = subprocess.Popen(
        [
            "flock",
            str(tools / ".minio.lock"),
            "sh",
            "-c",
            f"touch {held}; sleep 2; echo : > {binary}; chmod +x {binary}",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not held.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        said: list[str] = []
        assert wait_for_minio(tools, timeout=60, notify=said.append) == binary
        assert time.monotonic() - started >= 1.5 and build.poll() is not None
        assert len(said) == 1 and "waiting for the MinIO build" in said[0]  # once, not every second
    finally:
        build.wait(timeout=30)
    # A failed build (even with an older binary left): the reason and the end of its log.
    (tools / ".minio-status").write_text("1\n")
    (tools / "minio-build.log").write_text("go: downloading ...\ngo: github.com/minio/minio: proxy unreachable\n")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)MinIO build failed \(exit 1\).*proxy unreachable"):
        wait_for_minio(tools, timeout=5)
    # No build ever ran.
    (tools / ".minio-status").unlink()
    binary.unlink()
    with pytest.raises(pytest.fail.Exception, match=r"MinIO is not built .*make setup"):
        wait_for_minio(tools, timeout=5)
