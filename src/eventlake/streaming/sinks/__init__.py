"""Where a micro-batch goes. Every sink has one shape, ``write(batch, batch_id)``, and applies a batch
once however often it is replayed (the replay guard is the sink's own: a Delta commit marker checked on
replay, a PostgreSQL commits row, recomputed values for a MERGE; the DLQ topic is at-least-once and says so)."""

from eventlake.streaming.sinks.base import Sink
from eventlake.streaming.sinks.delta import DeltaAppend, DeltaUpsert
from eventlake.streaming.sinks.dlq import DeadLetters
from eventlake.streaming.sinks.postgres import PostgresUpsert

__all__ = ["DeadLetters", "DeltaAppend", "DeltaUpsert", "PostgresUpsert", "Sink"]
