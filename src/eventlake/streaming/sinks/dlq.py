"""The dead-letter topic: every quarantined record with its reason, for the producing team to see."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from eventlake.kafka.security import PLAINTEXT, KafkaSecurity
from eventlake.observability.metrics import SINK_COMMIT

REASON_HEADER = "eventlake-reason"
SOURCE_OFFSET_HEADER = "eventlake-source-offset"


@dataclass(frozen=True)
class DeadLetters:
    """Send quarantined rows (``key``, ``value``, ``topic``, ``partition``, ``offset``, ``reason``) to
    ``topic`` with an ``eventlake-reason`` header.

    At-least-once: Kafka offers no replay guard to a Spark writer, so a replayed batch sends its
    records again; consumers de-duplicate on the ``eventlake-source-offset`` header
    (``topic:partition:offset`` of the original record).
    """

    bootstrap: str
    topic: str
    security: KafkaSecurity = PLAINTEXT
    kind: str = "kafka"

    @property
    def target(self) -> str:
        return self.topic

    def write(self, batch: DataFrame, batch_id: int, *, replay: bool = True) -> None:
        headers = F.array(
            F.struct(F.lit(REASON_HEADER).alias("key"), F.col("reason").cast("binary").alias("value")),
            F.struct(
                F.lit(SOURCE_OFFSET_HEADER).alias("key"),
                F.concat_ws(":", "topic", "partition", "offset").cast("binary").alias("value"),
            ),
        )
        with SINK_COMMIT.labels(self.kind, self.topic).time():
            (
                batch.select("key", "value", headers.alias("headers"))
                .write.format("kafka")
                .options(**self.security.spark_options())
                .option("kafka.bootstrap.servers", self.bootstrap)
                .option("kafka.enable.idempotence", "true")
                .option("topic", self.topic)
                .save()
            )
