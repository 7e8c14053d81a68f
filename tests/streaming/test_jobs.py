"""How a failed query is reported: the cause first, not Spark's wrapping."""

from __future__ import annotations

from eventlake.streaming.jobs import root_cause

# The shape of a StreamingQueryException's text for a failed foreachBatch (as CI printed it).
WRAPPED = """[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in foreach \
batch sink. Reason: An exception was raised by the Python Proxy. Return Message: Traceback (most recent call last):
  File "/x/py4j/clientserver.py", line 644, in _call_proxy
    return_value = getattr(self.pool[obj_id], method)(*params)
  File "/x/eventlake/streaming/pipeline.py", line 219, in _silver_and_gold
    f.result()  # the batch is done when every write is; a failed write fails the batch
  File "/usr/lib/python3.11/concurrent/futures/_base.py", line 401, in __get_result
    raise self._exception
pyspark.errors.exceptions.captured.AnalysisException: [DELTA_CONCURRENT_APPEND] Files were added by a concurrent update.
JVM stacktrace:
org.apache.spark.sql.delta.ConcurrentAppendException

=== Streaming Query ===
Identifier: pipeline_transactions [id = 08c699ee, runId = 4b028c19]
Current Logical Plan:
StreamingDataSourceV2ScanRelation[key#1134, value#1135, topic#1136] KafkaTable
"""


def test_root_cause_is_the_exception_line_not_the_plan() -> None:
    cause = root_cause(WRAPPED)
    assert cause.startswith("pyspark.errors.exceptions.captured.AnalysisException: [DELTA_CONCURRENT_APPEND]")
    assert "KafkaTable" not in cause and "Traceback" not in cause


def test_root_cause_of_an_error_without_a_python_traceback() -> None:
    assert root_cause("[STREAM_FAILED] offsets out of range\nmore\n=== Streaming Query ===\nplan") == (
        "[STREAM_FAILED] offsets out of range"
    )
    assert root_cause("") == "unknown error"
