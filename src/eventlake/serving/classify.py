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

import io
import json
import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any

import fastavro

from eventlake.errors import RegistryRequestError
from eventlake.quality.rules import AllowedValues, NotNull, RangeRule, Regex, RowRule, SourceRules
from eventlake.streaming.schemas import SchemaCache

log = logging.getLogger(__name__)


def failed(rule: RowRule, record: dict[str, Any]) -> bool:
    """True where ``record`` fails ``rule`` (``quality.checks.failed``, evaluated on one record)."""
    return predicate(rule)(record)


def predicate(rule: RowRule) -> Callable[[dict[str, Any]], bool]:
    """``rule`` as a function of one record, True where it fails (built once: the hot loop has no
    type dispatch)."""
    field = rule.field
    if isinstance(rule, NotNull):
        return lambda r: r.get(field) is None
    if isinstance(rule, RangeRule):
        lo = rule.min if rule.min is not None else -math.inf
        hi = rule.max if rule.max is not None else math.inf
        return lambda r: (v := r.get(field)) is not None and not lo <= v <= hi
    if isinstance(rule, AllowedValues):
        allowed = frozenset(rule.values)
        return lambda r: (v := r.get(field)) is not None and v not in allowed
    if isinstance(rule, Regex):
        pattern = re.compile(rule.pattern)
        return lambda r: (v := r.get(field)) is not None and pattern.search(str(v)) is None
    raise TypeError(f"not a row rule: {rule!r}")


def _millis(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``event_time`` read as its long (epoch ms): no datetime per record."""

    def plain(f: dict[str, Any]) -> dict[str, Any]:
        t = f["type"]
        if f["name"] == "event_time" and isinstance(t, dict) and t.get("logicalType") == "timestamp-millis":
            return {**f, "type": "long"}
        return f

    return {**schema, "fields": [plain(f) for f in schema["fields"]]}


class Decoder:
    """Confluent wire format to a record in the subject's latest shape; None for what silver quarantines.

    Writer schemas are fetched by id once (``SchemaCache``); an id not known yet re-reads the subject,
    at most once a second, so a version registered mid-stream is decoded from its first record.
    """

    def __init__(self, schemas: SchemaCache, rules: SourceRules, *, future_skew_s: int) -> None:
        self.schemas = schemas
        self.critical = tuple(predicate(r) for r in rules.row if r.severity == "critical")
        self.skew_ms = future_skew_s * 1000
        self._writers: dict[int, Any] = {}  # id -> (writer, reader or None when they are the same)
        self._reader: Any = None
        self._refreshed = 0.0
        self._refresh()

    def _refresh(self) -> None:
        self._refreshed = time.monotonic()
        try:
            writers = self.schemas.subject_writers()
        except RegistryRequestError as err:
            if err.status != 404:
                raise
            # Nothing produced yet: every record is "unknown schema id" until a version is registered.
            log.info("subject not registered yet", extra={"subject": self.schemas.subject})
            return
        reader_text = self.schemas.reader
        self._reader = fastavro.parse_schema(_millis(json.loads(reader_text)))
        # Resolving a writer against the reader costs fastavro about as much as decoding: skip it for
        # the ids whose schema is the reader itself (all records until a new version appears).
        self._writers = {
            i: (fastavro.parse_schema(_millis(json.loads(w))), None if w == reader_text else self._reader)
            for i, w in writers.items()
        }

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
        schemas = self._writer(int.from_bytes(value[1:5], "big"))
        if schemas is None:
            return None
        try:
            record = fastavro.schemaless_reader(io.BytesIO(value[5:]), schemas[0], schemas[1])
        except Exception:  # an undecodable body is data, quarantined by the lake path
            return None
        return record if isinstance(record, dict) else None

    def decode(self, value: bytes | None, kafka_ts_ms: int) -> dict[str, Any] | None:
        """The valid record (``event_time`` and ``_ms``: epoch ms), or None if silver rejects it."""
        record = self._body(value)
        if record is None:
            return None
        for fails in self.critical:
            if fails(record):
                return None
        ms = record.get("event_time")
        if ms is None:
            return None
        if ms > kafka_ts_ms + self.skew_ms:
            return None  # future
        record["_ms"] = ms
        return record
