"""Session-wide real services: one Kafka broker, one PostgreSQL, one MinIO per test run.

Tests that need their own, disposable stack (kill -9, corrupt data, busy ports) build one with
``make_settings`` under a fresh home and stop it themselves.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventlake.config import Settings, load_settings
from eventlake.services import Endpoints, Stack, endpoints
from eventlake.services.postgres import PostgresService
from tests.minio import MINIO_BIN, wait_for_minio

REPO = Path(__file__).resolve().parents[1]
JARS_DIR = REPO / ".eventlake" / "jars"

# The developer's own EVENTLAKE_* settings must not leak into tests.
for _var in [v for v in os.environ if v.startswith("EVENTLAKE_")]:
    del os.environ[_var]
os.environ["EVENTLAKE_JARS_DIR"] = str(JARS_DIR)
# A local S3 server is MinIO (never a silent fall-back to moto): tests that want moto say s3.server=moto.
os.environ["EVENTLAKE_S3_SERVER"] = "minio"
os.environ["EVENTLAKE_S3_MINIO_BIN"] = str(MINIO_BIN)

MakeSettings = Callable[..., Settings]


@pytest.fixture(scope="session")
def make_settings(tmp_path_factory: pytest.TempPathFactory) -> MakeSettings:
    """Settings for a fresh EVENTLAKE_HOME; keyword overrides as for ``Settings``."""

    def make(name: str = "home", **overrides: Any) -> Settings:
        if "home" not in overrides:
            overrides["home"] = tmp_path_factory.mktemp(name)
        return load_settings(**overrides)

    return make


@pytest.fixture(scope="session")
def minio_bin(pytestconfig: pytest.Config) -> Path:
    """The MinIO binary; waits for its build by `make setup` (fails, never skips, if there is none)."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def notify(message: str) -> None:  # shown while pytest captures output: a CI log says why it waits
        with capture.global_and_fixture_disabled():
            sys.stderr.write(f"\n{message}\n")

    return wait_for_minio(notify=notify)


@pytest.fixture(scope="session")
def stack_settings(make_settings: MakeSettings, minio_bin: Path) -> Settings:
    return make_settings("stack", s3={"local": True, "server": "minio", "minio_bin": minio_bin})


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Stack]:
    """The shared local stack (Kafka KRaft, PostgreSQL, MinIO, registry), up for the whole session."""
    s = Stack(stack_settings)
    s.up()
    try:
        yield s
    finally:
        s.down()


@pytest.fixture(scope="session")
def live(stack: Stack) -> Endpoints:
    return endpoints(stack.settings)


@pytest.fixture(scope="session")
def kafka_bootstrap(live: Endpoints) -> str:
    return live.kafka_bootstrap


@pytest.fixture(scope="session")
def postgres_url(live: Endpoints) -> str:
    return live.postgres_url


@pytest.fixture(scope="session")
def s3_endpoint(live: Endpoints) -> str:
    assert live.s3_endpoint is not None
    return live.s3_endpoint


@pytest.fixture(scope="session")
def registry_url(live: Endpoints) -> str:
    return live.registry_url


@pytest.fixture(scope="session")
def spark(stack: Stack, live: Endpoints) -> Iterator[Any]:
    """One SparkSession for the whole test run (getOrCreate takes 10-20 s on 2 cores)."""
    from eventlake.streaming.session import build_spark  # noqa: PLC0415 - pyspark is slow to import

    session = build_spark(stack.settings, "eventlake-tests", s3_endpoint=live.s3_endpoint)
    yield session
    session.stop()


@pytest.fixture
def fresh_db(postgres_url: str) -> str:
    """A new, empty database on the session's PostgreSQL: its URL."""
    import uuid  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    name = f"t{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def lake(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A small real lake (``tests/lakes.py``), shared by the batch and Airflow tests."""
    from tests.lakes import small_lake  # noqa: PLC0415 - pulls in the streaming stack

    with small_lake(stack, make_settings, spark, tmp_path_factory.mktemp("lake")) as lake:
        yield lake


@pytest.fixture
def own_postgres(make_settings: MakeSettings) -> Iterator[PostgresService]:
    """A PostgreSQL server of the test's own, apart from the session stack's (a test may pause it)."""
    service = PostgresService(make_settings("pgpause"))
    service.start()
    try:
        yield service
    finally:
        service.stop()
