"""Bronze: every Kafka record as-is, appended to Delta ``bronze/<source>``: the replayable record.

The Delta streaming sink is exactly-once by itself: it records (query id, batch id) in the
table's log and skips a batch it already committed when the query restarts from its checkpoint.
"""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from eventlake.config import Settings
from eventlake.streaming.paths import checkpoint, table, with_trigger


def start_bronze(
    spark: SparkSession, settings: Settings, source: str, bootstrap: str, *, until_idle: bool
) -> StreamingQuery:
    name = f"bronze_{source}"
    records = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", settings.topics.raw(source))
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
        .option("maxOffsetsPerTrigger", settings.streaming.max_offsets_per_trigger)
        .load()
        .selectExpr("key", "value", "topic", "partition", "offset", "timestamp AS kafka_timestamp", "headers")
    )
    writer = (
        records.writeStream.queryName(name)
        .format("delta")
        .outputMode("append")
        .option("checkpointLocation", checkpoint(settings, name))
    )
    writer = with_trigger(writer, settings, until_idle=until_idle)
    return writer.start(table(settings, "bronze", source))
