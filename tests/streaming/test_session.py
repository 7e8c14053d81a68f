"""The local Spark JVM yields the CPU: every thread of a process gets the nice value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from eventlake.streaming.session import lower_priority

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
