"""Create the bronze, silver and quality Delta tables up front, so downstream queries can start on them
before the first record arrives (a Delta stream cannot start on a path that is not a table)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DataType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from eventlake.config import Settings
from eventlake.quality.store import METRICS_SCHEMA
from eventlake.streaming.paths import table
from eventlake.streaming.schemas import SchemaCache
from eventlake.streaming.specs import SPECS_BY_SOURCE, spark_schema

BRONZE_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_timestamp", TimestampType()),
        StructField(
            "headers", ArrayType(StructType([StructField("key", StringType()), StructField("value", BinaryType())]))
        ),
    ]
)
BRONZE_COLUMNS = tuple(f.name for f in BRONZE_SCHEMA.fields)
SILVER_META = [
    StructField("_kafka_partition", IntegerType()),
    StructField("_kafka_offset", LongType()),
    StructField("_schema_id", LongType()),
]


def nullable(dt: DataType) -> DataType:
    """The same type with every level nullable (decoding is PERMISSIVE, so Spark sees nullables)."""
    if isinstance(dt, StructType):
        return StructType([StructField(f.name, nullable(f.dataType), True) for f in dt.fields])
    if isinstance(dt, ArrayType):
        return ArrayType(nullable(dt.elementType), True)
    if isinstance(dt, MapType):
        return MapType(dt.keyType, nullable(dt.valueType), True)
    return dt


def silver_schema(spark: SparkSession, reader_schema: str) -> StructType:
    """The silver columns: the Avro reader schema as Spark decodes it, plus Kafka coordinates."""
    decoded = spark.range(0).select(from_avro(F.lit(b""), reader_schema).alias("r")).select("r.*").schema
    shaped = nullable(decoded)
    assert isinstance(shaped, StructType)
    return StructType([*shaped.fields, *SILVER_META])


#: The columns whose min/max Delta keeps per file of bronze and silver (``delta.dataSkippingStatsColumns``):
#: the ones their reads filter on (Kafka coordinates, event time). By default Delta tracks the first 32
#: columns of every row it writes, per row, for ids, payloads and amounts that no read prunes by: 7.7 %
#: of the executors' samples in a JFR profile of the bench's whole run (docs/performance.md, session 18).
STATS_COLUMNS: dict[str, tuple[str, ...]] = {
    "bronze": ("partition", "offset", "kafka_timestamp"),
    "silver": ("event_time", "_kafka_partition", "_kafka_offset"),
}
STATS_PROPERTY = "delta.dataSkippingStatsColumns"


def create_table(
    spark: SparkSession, path: str, schema: StructType | str, *, stats_columns: tuple[str, ...] = ()
) -> None:
    """Create the Delta table at ``path`` with ``schema`` (a StructType or Spark DDL) unless it exists;
    ``stats_columns``: the only columns Delta keeps min/max of (default: its first 32), set on an
    existing table too (it applies to the files written from then on)."""
    if isinstance(schema, str):
        schema = spark.createDataFrame([], schema).schema
    value = ",".join(stats_columns)
    if not DeltaTable.isDeltaTable(spark, path):
        # A new table gets its property in its first commit (one commit, not three Spark actions).
        builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
        (builder.property(STATS_PROPERTY, value) if value else builder).execute()
        return
    # An existing table (a lake from before this setting) gets it from its next commit on.
    if value and DeltaTable.forPath(spark, path).detail().head()["properties"].get(STATS_PROPERTY) != value:  # type: ignore[index]
        quoted = path.replace("`", "``")
        spark.sql(f"ALTER TABLE delta.`{quoted}` SET TBLPROPERTIES ('{STATS_PROPERTY}' = '{value}')")


def ensure_tables(spark: SparkSession, settings: Settings, registry_url: str) -> None:
    """Create every Delta table the pass writes to (idempotent), several at once: each is a Delta
    commit or a log read, mostly waiting on storage."""
    # Written by every source's silver query: created once here, else concurrent first writers
    # race on the protocol (ProtocolChangedException).
    tables: list[tuple[str, StructType | str, tuple[str, ...]]] = [
        (table(settings, "quality", "metrics"), METRICS_SCHEMA, ())
    ]
    for source in settings.topics.sources:
        reader = SchemaCache(registry_url, f"{settings.topics.raw(source)}-value").latest()
        tables += [
            (table(settings, "bronze", source), BRONZE_SCHEMA, STATS_COLUMNS["bronze"]),
            (table(settings, "silver", source), silver_schema(spark, reader), STATS_COLUMNS["silver"]),
        ]
        tables += [(table(settings, "gold", spec.table), spark_schema(spec), ()) for spec in SPECS_BY_SOURCE[source]]
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="create-table") as pool:
        # list(): the first failure raises here
        list(pool.map(lambda t: create_table(spark, t[0], t[1], stats_columns=t[2]), tables))
