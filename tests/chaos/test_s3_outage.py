"""An outage of the lake's S3 API (MinIO) while the pipeline streams, injected by a loopback proxy in
front of the real server: S3A's own retries rode out 10 s and 60 s without a failed batch (measured);
an outage that outlasts them fails the Delta write and its batch, and the supervisor restarts the query
from its checkpoint (kept off the lake here, on local disk). The serving path (PostgreSQL gold) never
stops. Afterwards every layer equals an independent recompute.

Only this test's bucket goes through the proxy: Hadoop's S3A reads a per-bucket endpoint
(``fs.s3a.bucket.<name>.endpoint``) when it first opens that bucket, so the shared Spark session's
other lakes keep talking to MinIO directly."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from eventlake.lake import s3_credentials
from eventlake.services import Stack, endpoints
from tests.chaos.streaming import (
    LONG_OUTAGE_S,
    LONG_TIMEOUT,
    SOURCE,
    outage_backoff,
    restarts,
    start_producing,
    stream_settings,
    streaming,
)
from tests.conftest import MakeSettings
from tests.faults import TcpProxy
from tests.streaming.exact import assert_layers_exact
from tests.streaming.test_pipeline import delta_rows

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "outage_s",
    [
        10,
        pytest.param(60, marks=pytest.mark.chaos),
        pytest.param(LONG_OUTAGE_S, marks=[pytest.mark.chaos, LONG_TIMEOUT]),
    ],
)
def test_an_s3_outage_mid_stream_is_ridden_out_and_every_layer_is_exact(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any, outage_s: float
) -> None:
    bucket = f"chaos-{uuid.uuid4().hex[:8]}"
    settings = stream_settings(
        stack,
        make_settings,
        tmp_path,
        lake=f"s3://{bucket}/lake",
        streaming=outage_backoff(outage_s),
    )
    direct = endpoints(settings).s3_endpoint
    assert direct is not None, "the session stack serves S3 (MinIO)"
    key, secret = s3_credentials(settings) or ("", "")
    boto3.client(
        "s3", endpoint_url=direct, aws_access_key_id=key, aws_secret_access_key=secret, region_name=settings.s3.region
    ).create_bucket(Bucket=bucket)
    parts = urlsplit(direct)
    assert parts.hostname is not None and parts.port is not None
    proxy = TcpProxy(parts.hostname, parts.port)
    spark.sparkContext._jsc.hadoopConfiguration().set(f"fs.s3a.bucket.{bucket}.endpoint", proxy.url_for(direct))
    live = endpoints(settings)
    n = 2500
    restarts_before = restarts(f"pipeline_{SOURCE}")
    producing = start_producing(settings, live, SOURCE, n, rate=200, seed=34)
    try:
        with streaming(settings, live) as pipeline:
            # delta_rows reads with delta-rs straight from MinIO: the outage is Spark's alone.
            pipeline.until(lambda: len(delta_rows(settings, "silver", SOURCE)) > 0, 240, "the first silver rows")
            proxy.refuse()  # S3 is down: connections reset, new ones refused
            cut = time.monotonic()
            time.sleep(outage_s)
            proxy.heal()
            print(f"\nreliability s3_outage {outage_s:g} s: healed after {time.monotonic() - cut:.1f} s")
            producing.join(180)
            caught_up = pipeline.caught_up(live, SOURCE, n)
            recovery = pipeline.until(caught_up, 420, "every record through PostgreSQL gold and silver")
            print(f"reliability s3_outage {outage_s:g} s: recovered {recovery:.1f} s after it ended")
            pipeline.settle(spark)
        assert not pipeline.failure, pipeline.failure
    finally:
        proxy.close()
    count = restarts(f"pipeline_{SOURCE}") - restarts_before
    # S3A's own retries may outlast a short outage (no batch fails); a long one fails batches.
    print(f"reliability s3_outage {outage_s:g} s: {count:g} query restarts, {proxy.refused} connections refused")
    assert proxy.refused > 0, "the lake path never tried S3 during the outage"
    assert_layers_exact(settings, SOURCE, n)
