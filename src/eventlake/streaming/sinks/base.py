"""The sink contract (after Quix Streams' ``sinks/base``): a name for metrics, and ``write``."""

from __future__ import annotations

from typing import Protocol

from pyspark.sql import DataFrame


class Sink(Protocol):
    #: ``<kind>`` and ``<target>`` label the ``eventlake_sink_*`` metrics
    kind: str
    target: str

    def write(self, batch: DataFrame, batch_id: int, *, replay: bool = True) -> None:
        """Apply ``batch`` once: a second call with the same ``batch_id`` changes nothing. ``replay=False``
        promises the batch never ran before (the sink may then skip its replay check)."""
        ...
