"""Silver's row decisions for one Kafka record, in Python: the serving path judges each record as
``streaming.silver`` does in Spark, so both keep the same events.

Same order and meaning: Confluent wire format, a schema id registered under the topic's subject,
an Avro body that decodes (writer schema of the id, the subject's latest as reader), every critical
row rule of the rules file, then ``future`` (event time more than ``streaming.max_future_skew_s``
after the Kafka timestamp). Lateness and duplicates need the partition's history, so
:mod:`eventlake.serving.state` judges those. The reasons themselves are not kept: quarantine and
the dead-letter topic are the lake's job; here a record is either an event of the live view or not.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import time
from typing import Any

import fastavro
import httpx

from eventlake.quality.rules import AllowedValues, NotNull, RangeRule, Regex, RowRule, SourceRules
from eventlake.streaming.schemas import SchemaCache

log = logging.getLogger(__name__)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MS = dt.timedelta(milliseconds=1)


def failed(rule: RowRule, record: dict[str, Any]) -> bool:
    """True where ``record`` fails ``rule`` (``quality.checks.failed``, evaluated on one record)."""
    value = record.get(rule.field)
    if isinstance(rule, NotNull):
        return value is None
    if value is None:
        return False
    if isinstance(rule, RangeRule):
        return (rule.min is not None and value < rule.min) or (rule.max is not None and value > rule.max)
    if isinstance(rule, AllowedValues):
        return value not in rule.values
    if isinstance(rule, Regex):
        return re.search(rule.pattern, str(value)) is None
    raise TypeError(f"not a row rule: {rule!r}")


class Decoder:
    """Confluent wire format to a record in the subject's latest shape; None for what silver quarantines.

    Writer schemas are fetched by id once (``SchemaCache``); an id not known yet re-reads the subject,
    at most once a second, so a version registered mid-stream is decoded from its first record.
    """

    def __init__(self, schemas: SchemaCache, rules: SourceRules, *, future_skew_s: int) -> None:
        self.schemas = schemas
        self.critical = tuple(r for r in rules.row if r.severity == "critical")
        self.skew_ms = future_skew_s * 1000
        self._writers: dict[int, Any] = {}
        self._reader: Any = None
        self._refreshed = 0.0
        self._refresh()

    def _refresh(self) -> None:
        self._refreshed = time.monotonic()
        try:
            writers = self.schemas.subject_writers()
        except httpx.HTTPStatusError as err:
            if err.response.status_code != 404:
                raise
            # Nothing produced yet: every record is "unknown schema id" until a version is registered.
            log.info("subject not registered yet", extra={"subject": self.schemas.subject})
            return
        self._reader = fastavro.parse_schema(json.loads(self.schemas.reader))
        self._writers = {i: fastavro.parse_schema(json.loads(w)) for i, w in writers.items()}

    def _writer(self, schema_id: int) -> Any:
        writer = self._writers.get(schema_id)
        if writer is None and time.monotonic() - self._refreshed >= 1.0:
            self._refresh()
            writer = self._writers.get(schema_id)
        return writer

    def _body(self, value: bytes | None) -> dict[str, Any] | None:
        """The decoded Avro record, or None: not the wire format, an unknown schema id, undecodable."""
        if value is None or len(value) < 5 or value[0] != 0:
            return None
        writer = self._writer(int.from_bytes(value[1:5], "big"))
        if writer is None:
            return None
        try:
            record = fastavro.schemaless_reader(io.BytesIO(value[5:]), writer, self._reader)
        except Exception:  # an undecodable body is data, quarantined by the lake path
            return None
        return record if isinstance(record, dict) else None

    def decode(self, value: bytes | None, kafka_ts_ms: int) -> dict[str, Any] | None:
        """The valid record (``event_time`` as epoch ms under ``_ms``), or None if silver rejects it."""
        record = self._body(value)
        if record is None or any(failed(rule, record) for rule in self.critical):
            return None
        t = record.get("event_time")
        if t is None:
            return None
        ms = t if isinstance(t, int) else (t - EPOCH) // MS
        if ms > kafka_ts_ms + self.skew_ms:
            return None  # future
        record["_ms"] = ms
        return record
