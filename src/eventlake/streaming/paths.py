"""Where each table and checkpoint lives (all names come from config), and when queries fire."""

from __future__ import annotations

from pyspark.sql.streaming.readwriter import DataStreamWriter

from eventlake.config import Settings
from eventlake.lake import local_path


def spark_uri(uri: str) -> str:
    """The form Spark/Delta want: s3a:// for S3 (users may write s3://), a plain path for file://.

    (Delta compares ``file:///x`` and ``file:/x`` as different locations when creating tables.)
    """
    if uri.startswith("s3://"):
        return "s3a://" + uri.removeprefix("s3://")
    if uri.startswith("file://"):
        return str(local_path(uri))
    return uri


def table(settings: Settings, layer: str, name: str) -> str:
    """``<lake>/<layer>/<name>``: bronze/<source>, silver/<source>, quarantine/<source>, gold/<table>."""
    return f"{spark_uri(settings.lake_uri).rstrip('/')}/{layer}/{name}"


def checkpoint(settings: Settings, query: str) -> str:
    root = settings.streaming.checkpoint_dir or (settings.home / "checkpoints").as_uri()
    return f"{spark_uri(root).rstrip('/')}/{query}"


def with_trigger(writer: DataStreamWriter, settings: Settings, *, until_idle: bool) -> DataStreamWriter:
    """``availableNow`` (process what is there, then stop) or a fixed processing-time trigger."""
    if until_idle:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=f"{settings.streaming.trigger_s} seconds")
