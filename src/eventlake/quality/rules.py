"""Data-quality rules as config: ``config/quality.yaml``, validated at start with line numbers.

The file::

    sources:
      iot_sensors:
        - {name: unit_known, type: allowed_values, field: unit, values: [C, "%RH"], severity: warning}
        - {type: freshness, max_lag_s: 300}
    detectors:
      - {name: iot_max, table: gold_iot_sensors_1m, series: [device_id], value: max_value}

Row rules (``not_null``, ``range``, ``allowed_values``, ``regex``) are Spark column expressions
evaluated inside the silver micro-batch; a row failing a **critical** row rule goes to quarantine
with the rule's name as the reason, a **warning** row rule only counts. Batch rules: ``unique``
(duplicate event_ids), ``freshness`` (newest event time behind now), ``volume`` (valid events per
closed event-time window within a band), ``schema_drift`` (a new schema id, or an optional field
that stops arriving).

The contract's required fields and ranges (``sources.required``/``sources.ranges`` in the
settings) are rules too, always on and critical, named ``null_required:<field>`` and
``out_of_range:<field>``; the file adds rules beside them.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eventlake.config import SOURCES, Settings
from eventlake.errors import ConfigError
from eventlake.streaming.specs import GOLD_SPECS

Severity = Literal["warning", "critical"]
ROW_RULES = ("not_null", "range", "allowed_values", "regex")


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,80}$")
    severity: Severity = "critical"

    @property
    def rule_name(self) -> str:
        return self.name or self.default_name()

    def default_name(self) -> str:
        field = getattr(self, "field", None)
        kind: str = getattr(self, "type")  # noqa: B009 - every subclass defines it as a Literal
        return f"{kind}:{field}" if field else kind


class NotNull(_Rule):
    type: Literal["not_null"]
    field: str


def _bounds(kind: str, lo: float | None, hi: float | None) -> None:
    if lo is None and hi is None:
        raise ValueError(f"{kind} needs min, max or both")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"min {lo} > max {hi}")


class RangeRule(_Rule):
    type: Literal["range"]
    field: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RangeRule:
        _bounds("range", self.min, self.max)
        return self


class AllowedValues(_Rule):
    type: Literal["allowed_values"]
    field: str
    values: tuple[str | float | bool, ...] = Field(min_length=1)


class Regex(_Rule):
    type: Literal["regex"]
    field: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as err:
            raise ValueError(f"not a regular expression: {err}") from err
        return v


class Unique(_Rule):
    """Duplicates of an event_id (dropped by silver's de-duplication) count as failures."""

    type: Literal["unique"]
    field: Literal["event_id"] = "event_id"


class Freshness(_Rule):
    """Fails a batch whose newest event time is more than ``max_lag_s`` behind the wall clock."""

    type: Literal["freshness"]
    max_lag_s: float = Field(gt=0)


class Volume(_Rule):
    """Valid events per closed event-time window of ``window_s`` must lie within [min, max]."""

    type: Literal["volume"]
    window_s: int = Field(default=60, gt=0, le=86_400)
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Volume:
        _bounds("volume", self.min, self.max)
        return self


class SchemaDrift(_Rule):
    """A schema id not seen before, or an optional field non-null before and all-null in a batch of at
    least ``min_rows`` valid rows."""

    type: Literal["schema_drift"]
    min_rows: int = Field(default=50, gt=0)


Rule = Annotated[
    NotNull | RangeRule | AllowedValues | Regex | Unique | Freshness | Volume | SchemaDrift,
    Field(discriminator="type"),
]
RowRule = NotNull | RangeRule | AllowedValues | Regex


class Detector(BaseModel):
    """Online anomaly detector over one gold table's time series: rolling median/MAD robust z-score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")
    table: str
    series: tuple[str, ...] = Field(min_length=1)
    value: str
    #: windows of history the median/MAD are taken over
    history: int = Field(default=30, ge=3, le=1_000)
    #: fewer prior windows than this: no score yet (the detector is still learning)
    min_history: int = Field(default=8, ge=3)
    #: |robust z| above this flags an anomaly
    threshold: float = Field(default=6.0, gt=0)
    #: MAD below this fraction of |median| is raised to it, so flat series do not flag noise
    min_scale: float = Field(default=0.001, ge=0)


class QualityFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[str, tuple[Rule, ...]] = {}
    detectors: tuple[Detector, ...] = ()


class SourceRules:
    """All rules of one source: the contract's and the file's, by name."""

    def __init__(self, source: str, rules: list[Any]) -> None:
        self.source = source
        self.rules: tuple[Any, ...] = tuple(rules)

    @cached_property
    def row(self) -> tuple[RowRule, ...]:
        return tuple(r for r in self.rules if r.type in ROW_RULES)

    def of_type(self, kind: str) -> list[Any]:
        return [r for r in self.rules if r.type == kind]

    def severity(self, rule: str) -> Severity:
        return next((r.severity for r in self.rules if r.rule_name == rule), "critical")


class Quality:
    """The validated rule set and detectors of the whole platform."""

    def __init__(self, by_source: dict[str, SourceRules], detectors: tuple[Detector, ...]) -> None:
        self.by_source = by_source
        self.detectors = detectors

    def source(self, name: str) -> SourceRules:
        return self.by_source[name]


def _schema_fields(settings: Settings, source: str) -> dict[str, Any]:
    path = settings.schemas_dir / f"{source}.avsc"
    return {f["name"]: f["type"] for f in json.loads(path.read_text())["fields"]}


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML entry at ``loc``: a mapping entry's key line, a list item's own line.
    An unknown or missing entry gives the line of its nearest existing parent."""
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            entry = next(((k, v) for k, v in node.value if k.value == part), None)
            if entry is None:
                break
            node, line = entry[1], entry[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _contract_rules(settings: Settings, source: str) -> list[Any]:
    rules: list[Any] = [
        NotNull(type="not_null", field=f, name=f"null_required:{f}") for f in settings.sources.required[source]
    ]
    for f, bounds in settings.sources.ranges.get(source, {}).items():
        rules.append(RangeRule(type="range", field=f, min=bounds.min, max=bounds.max, name=f"out_of_range:{f}"))
    return rules


def _read_yaml(path: Path) -> tuple[yaml.Node | None, Any]:
    """The file's YAML node tree (for line numbers) and data; :class:`ConfigError` in one line for a
    file that is not UTF-8, not YAML, or nested past the parser's stack."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text: {err}", "save the rules file as UTF-8") from err
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:  # PyYAML's message spans lines (problem, context, marks): one line here
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}", "fix the YAML syntax") from err
    except RecursionError as err:  # nested thousands deep: the parser's stack, not a crash of the caller
        raise ConfigError(f"{path}: YAML nested too deeply", "fix the YAML structure") from err
    return root, data


def load_quality(settings: Settings) -> Quality:
    """Read and validate ``quality.rules_file``; raise :class:`ConfigError` naming the file and line."""
    path = settings.quality.rules_file
    if not path.is_file():
        raise ConfigError(f"data-quality rules file {path} does not exist", "set EVENTLAKE_QUALITY_RULES_FILE")
    root, data = _read_yaml(path)

    def fail(loc: tuple[int | str, ...], msg: str) -> ConfigError:
        line = _line_of(root, loc)
        # A key of the file is echoed: quoted unless plain, so one with a newline stays one line.
        where = ".".join(str(p) if re.fullmatch(r"[\w.:-]+", str(p)) else repr(p) for p in loc)
        return ConfigError(f"{path}:{line}: {where}: {' '.join(msg.split())}", "fix the rule (see docs/quality.md)")

    try:
        parsed = QualityFile.model_validate(data)
    except RecursionError as err:  # a self-referencing alias (``a: &a [*a]``)
        raise fail((), "a YAML alias refers to itself") from err
    except ValidationError as err:
        first = err.errors()[0]
        raise fail(tuple(first["loc"]), first["msg"]) from err
    by_source: dict[str, SourceRules] = {}
    for source, rules in parsed.sources.items():
        known = dict.fromkeys((*SOURCES, *settings.topics.sources))
        if source not in known:
            raise fail(("sources", source), f"unknown source (known: {', '.join(known)})")
        fields = _schema_fields(settings, source)
        for i, rule in enumerate(rules):
            field = getattr(rule, "field", None)
            if field is not None and field not in fields:
                raise fail(("sources", source, i, "field"), f"unknown field {field!r} of {source}")
    for source in settings.topics.sources:
        contract = _contract_rules(settings, source)
        merged = contract + list(parsed.sources.get(source, ()))
        names = [r.rule_name for r in merged]
        for i, name in enumerate(names[len(contract) :]):
            if names.count(name) > 1:
                raise fail(("sources", source, i), f"rule names must be unique: {name} (set `name:`)")
        if sum(r.type == "volume" for r in merged) > 1:
            raise fail(("sources", source), "at most one volume rule per source")
        by_source[source] = SourceRules(source, merged)
    _check_detectors(parsed.detectors, fail)
    return Quality(by_source, parsed.detectors)


def _check_detectors(detectors: tuple[Detector, ...], fail: Any) -> None:
    specs = {s.table: s for s in GOLD_SPECS}
    for i, d in enumerate(detectors):
        spec = specs.get(d.table)
        if spec is None:
            raise fail(("detectors", i, "table"), f"unknown gold table {d.table!r} (known: {', '.join(specs)})")
        keys = {k for k, _ in spec.keys}
        for col in d.series:
            if col not in keys:
                raise fail(("detectors", i, "series"), f"{col!r} is not a key of {d.table}")
        if d.value not in {a for a, _, _ in spec.aggs}:
            raise fail(("detectors", i, "value"), f"{d.value!r} is not an aggregate of {d.table}")
