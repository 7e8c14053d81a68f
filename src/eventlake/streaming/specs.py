"""The gold tables: what each aggregates, and their PostgreSQL DDL (no Spark needed to read this)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from psycopg import sql

from eventlake import pg


@dataclass(frozen=True)
class GoldSpec:
    """One gold table: group keys and aggregates (Spark SQL), with their PostgreSQL types."""

    table: str
    source: str
    keys: tuple[tuple[str, str], ...]  # (column, pg type)
    aggs: tuple[tuple[str, str, str], ...]  # (column, spark sql aggregate, pg type)
    #: the silver columns the aggregates read (besides event_time): what open-window state keeps
    inputs: tuple[str, ...] = ()
    window_minutes: int = 1
    slide_minutes: int = 1  # == window_minutes: tumbling; smaller: sliding

    @property
    def key_columns(self) -> list[str]:
        return ["window_start", *(k for k, _ in self.keys)]

    @property
    def columns(self) -> list[str]:
        return ["window_start", "window_end", *(k for k, _ in self.keys), *(a for a, _, _ in self.aggs)]


GOLD_SPECS: tuple[GoldSpec, ...] = (
    GoldSpec(
        "gold_user_activity_1m",
        "user_activity",
        keys=(("event_type", "text"),),
        aggs=(("events", "count(*)", "bigint"), ("unique_users", "count(DISTINCT user_id)", "bigint")),
        inputs=("user_id",),
    ),
    GoldSpec(
        "gold_iot_sensors_1m",
        "iot_sensors",
        keys=(("device_id", "text"), ("sensor_type", "text")),
        aggs=(
            ("readings", "count(*)", "bigint"),
            ("avg_value", "avg(value)", "double precision"),
            ("min_value", "min(value)", "double precision"),
            ("max_value", "max(value)", "double precision"),
            # Extension beyond the contract columns: exact 95th percentile (linear interpolation).
            ("p95_value", "percentile(value, 0.95)", "double precision"),
        ),
        inputs=("value",),
    ),
    GoldSpec(
        "gold_transactions_1m",
        "transactions",
        keys=(("merchant_category", "text"),),
        aggs=(
            ("txn_count", "count(*)", "bigint"),
            ("amount_sum", "sum(amount)", "double precision"),
            ("declined_count", "count_if(status = 'DECLINED')", "bigint"),
        ),
        inputs=("amount", "status"),
    ),
    # Sliding: 5-minute windows every minute, so each event counts in five rows.
    GoldSpec(
        "gold_transactions_5m_sliding",
        "transactions",
        keys=(("merchant_category", "text"),),
        aggs=(("txn_count", "count(*)", "bigint"), ("amount_sum", "sum(amount)", "double precision")),
        inputs=("amount",),
        window_minutes=5,
        slide_minutes=1,
    ),
)
#: Rollup grains of the tumbling 1-minute gold tables (the batch side; the sliding table is not rolled up).
ROLLUP_GRAINS: dict[str, int] = {"1h": 60, "1d": 24 * 60}


def rollup_spec(spec: GoldSpec, grain: str) -> GoldSpec:
    """``gold_<x>_1m`` at a coarser grain (``gold_<x>_1h``, ``gold_<x>_1d``): the same keys and
    aggregates over longer tumbling windows. Computed from silver, not from the 1-minute rows:
    distinct counts and percentiles do not add up."""
    minutes = ROLLUP_GRAINS[grain]
    return replace(
        spec, table=f"{spec.table.removesuffix('_1m')}_{grain}", window_minutes=minutes, slide_minutes=minutes
    )


ROLLUP_SPECS: tuple[GoldSpec, ...] = tuple(
    rollup_spec(s, grain) for s in GOLD_SPECS if s.window_minutes == s.slide_minutes == 1 for grain in ROLLUP_GRAINS
)
SPECS_BY_SOURCE: dict[str, tuple[GoldSpec, ...]] = {
    src: tuple(s for s in GOLD_SPECS if s.source == src) for src in {s.source for s in GOLD_SPECS}
}


def state_columns(source: str) -> list[str]:
    """The silver columns the gold tables of ``source`` need: event_id (dedup), event_time, keys, inputs."""
    cols = ["event_id", "event_time"]
    for spec in SPECS_BY_SOURCE[source]:
        cols += [c for c in (*(k for k, _ in spec.keys), *spec.inputs) if c not in cols]
    return cols


_SPARK_TYPES = {"text": "string", "bigint": "bigint", "double precision": "double"}


def spark_schema(spec: GoldSpec) -> str:
    """The gold table's columns as a Spark DDL string (the Delta ``gold/<table>`` schema)."""
    cols = ["window_start timestamp", "window_end timestamp"]
    cols += [f"{k} {_SPARK_TYPES[t]}" for k, t in spec.keys]
    cols += [f"{a} {_SPARK_TYPES[t]}" for a, _, t in spec.aggs]
    return ", ".join(cols)


def longest_window_minutes(source: str) -> int:
    return max(s.window_minutes for s in SPECS_BY_SOURCE[source])


def upsert_statement(spec: GoldSpec) -> sql.Composed:
    """INSERT of one gold row (``spec.columns`` order) that replaces the window's row if it differs.
    An unchanged row is left alone, so ``updated_at`` is when the window's values last changed."""
    cols = spec.columns
    values = [c for c in cols if c not in spec.key_columns]
    return sql.SQL(
        "INSERT INTO {t} AS t ({c}) VALUES ({v}) ON CONFLICT ({k}) DO UPDATE SET {u}, updated_at = now()"
        " WHERE ({old}) IS DISTINCT FROM ({new})"
    ).format(
        t=sql.Identifier(spec.table),
        c=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        v=sql.SQL(", ").join(sql.Placeholder() for _ in cols),
        k=sql.SQL(", ").join(sql.Identifier(c) for c in spec.key_columns),
        u=sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in values),
        old=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in values),
        new=sql.SQL(", ").join(sql.SQL("excluded.{}").format(sql.Identifier(c)) for c in values),
    )


def ensure_gold_table(url: str, spec: GoldSpec) -> None:
    cols: list[sql.Composable] = [
        sql.SQL("window_start timestamptz NOT NULL"),
        sql.SQL("window_end timestamptz NOT NULL"),
    ]
    cols += [sql.SQL("{} {} NOT NULL").format(sql.Identifier(k), sql.SQL(t)) for k, t in spec.keys]
    cols += [sql.SQL("{} {}").format(sql.Identifier(a), sql.SQL(t)) for a, _, t in spec.aggs]
    cols.append(sql.SQL("updated_at timestamptz NOT NULL DEFAULT now()"))
    pk = sql.SQL(", ").join(sql.Identifier(c) for c in spec.key_columns)
    ddl = sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
        sql.Identifier(spec.table), sql.SQL(", ").join(cols), pk
    )
    with pg.connect(url) as conn:
        conn.execute(ddl)
