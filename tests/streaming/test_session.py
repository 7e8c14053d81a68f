"""The Spark session: the local JVM yields the CPU (every thread gets the nice value), generated code
is cached, and the driver is reachable where executors on other hosts look for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventlake.net import free_port, port_accepts
from eventlake.streaming.session import lower_priority, spark_conf

THREADS = """
import threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
print("ready", flush=True)
time.sleep(30)
"""


def _nice(pid: int) -> list[int]:
    return [os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()]


def test_every_thread_is_lowered_and_none_is_raised() -> None:
    proc = subprocess.Popen([sys.executable, "-c", THREADS], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert len(_nice(proc.pid)) == 4
        assert lower_priority(proc.pid, 7) == 4
        assert set(_nice(proc.pid)) == {7}
        assert lower_priority(proc.pid, 3) == 0, "a lower value never raises priority"
        assert set(_nice(proc.pid)) == {7}
    finally:
        proc.kill()
        proc.wait()
    assert lower_priority(None, 10) == 0


def test_generated_code_outlives_a_batchs_worth_of_other_plans(spark: Any) -> None:
    """A plan run again after more distinct plans than Spark's default codegen cache holds (100) is not
    compiled again: a pass batch runs ~270 distinct classes, and recompiling them cost every batch
    Janino and JIT time (docs/performance.md)."""
    from pyspark.sql import functions as F  # noqa: PLC0415

    compiles = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()

    def run(i: int) -> None:  # an int literal is inlined in the generated code: one class per i
        rows = spark.range(3).select((F.col("id") * 7 + F.lit(1_000_003 + i)).alias("x")).collect()
        assert rows[2].x == 1_000_017 + i

    run(0)
    for i in range(1, 130):
        run(i)
    before = compiles.getCount()
    run(0)
    assert compiles.getCount() == before, "the first plan's code was evicted and compiled again"


def test_driver_host_ports_and_java_options(make_settings: Any) -> None:
    default = spark_conf(make_settings())
    assert (default["spark.driver.host"], default["spark.driver.bindAddress"]) == ("127.0.0.1", "127.0.0.1")
    assert "spark.driver.port" not in default and "spark.driver.blockManager.port" not in default
    cluster = spark_conf(
        make_settings(
            streaming={
                "driver_host": "streaming",
                "driver_port": 7078,
                "block_manager_port": 7079,
                "spark_conf": {"spark.driver.blockManager.port": "7080"},
                "driver_java_options": "-XX:+UseG1GC -XX:MaxGCPauseMillis=100",
            }
        )
    )
    assert (cluster["spark.driver.host"], cluster["spark.driver.bindAddress"]) == ("streaming", "0.0.0.0")
    assert cluster["spark.driver.port"] == "7078"
    assert cluster["spark.driver.blockManager.port"] == "7080", "streaming.spark_conf is applied last"
    java = cluster["spark.driver.extraJavaOptions"]
    assert java.startswith("-Xss16m ") and java.endswith(" -XX:+UseG1GC -XX:MaxGCPauseMillis=100"), "appended"
    assert "ParallelGC" not in java and "Tiered" not in java, (
        "the setting replaces the default (two collectors would not start)"
    )
    assert default["spark.driver.extraJavaOptions"].endswith(" -XX:+UseParallelGC -XX:-TieredCompilation")


def _host_address() -> str | None:
    """An address of this host other than loopback (where executors on other hosts would reach it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


DRIVER = """
import sys
from eventlake.config import Settings
from eventlake.streaming.session import build_spark
spark = build_spark(Settings())
assert spark.range(5).count() == 5
print(spark.conf.get("spark.driver.host"), spark.conf.get("spark.driver.port"), flush=True)
sys.stdin.readline()
"""


def test_a_driver_with_a_driver_host_is_reachable_there(make_settings: Any, tmp_path: Path) -> None:
    """What a cluster's executors need (Compose's ``spark-worker``, a Kubernetes pod): the driver's RPC
    port answers on the host's own address, not only on loopback."""
    address = _host_address()
    if address is None:
        pytest.skip("this host has no address but loopback")
    port = free_port("0.0.0.0")
    settings = make_settings()
    env = {
        **os.environ,
        "EVENTLAKE_HOME": str(settings.home),
        "EVENTLAKE_STREAMING_DRIVER_HOST": address,
        "EVENTLAKE_STREAMING_DRIVER_PORT": str(port),
        "EVENTLAKE_STREAMING_JVM_NICE": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split() == [address, str(port)]
        assert port_accepts(address, port), f"the driver does not answer on {address}:{port}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
