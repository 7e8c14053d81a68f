"""Where each table and checkpoint lives (all names come from config), and when queries fire."""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql.streaming.readwriter import DataStreamWriter

from eventlake.config import Settings
from eventlake.lake import local_path

log = logging.getLogger(__name__)


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


def clear_interrupted_writes(location: str) -> list[str]:
    """Remove the temporary files a killed query left in its offset and commit logs; returns them.

    Spark writes each log entry to ``.<batch>.<uuid>.tmp`` and renames it into place, so such a file
    is never a committed entry. But a query killed between the two (kill -9 while it writes batch 0's
    offsets) cannot start again: Spark 4 then finds the offset log "not empty on batch 0"
    (``STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY``). Local checkpoints only; object stores have no
    rename, and Spark writes their logs without temporary files.
    """
    if "://" in location:
        return []
    removed = []
    for log_dir in ("offsets", "commits"):
        for leftover in sorted((Path(location) / log_dir).glob(".*.tmp*")):
            leftover.unlink()
            removed.append(str(leftover))
    if removed:
        log.warning("removed the unfinished writes of a killed query", extra={"files": removed})
    return removed


def has_offsets(location: str) -> bool:
    """The (local) checkpoint has started a batch: its offset log has an entry. Object-store
    checkpoints count as started (``eventlake stream reset`` works on local checkpoints only)."""
    if "://" in location:
        return True
    logs = Path(location) / "offsets"
    return logs.is_dir() and any(p.name.isdigit() for p in logs.iterdir())


def committed_offsets(location: str) -> str | None:
    """The Kafka offsets up to which the (local) checkpoint's last committed batch read, as Spark's
    ``startingOffsets`` JSON; None if it committed no batch."""
    commits = Path(location) / "commits"
    done = (
        sorted((int(p.name) for p in commits.iterdir() if p.name.isdigit()), reverse=True) if commits.is_dir() else []
    )
    if not done:
        return None
    # An offset log entry: a version line, the batch's metadata, then one line per source.
    lines = (Path(location) / "offsets" / str(done[0])).read_text().splitlines()
    return lines[2]


def with_trigger(writer: DataStreamWriter, settings: Settings, *, until_idle: bool) -> DataStreamWriter:
    """``availableNow`` (process what is there, then stop) or a fixed processing-time trigger."""
    if until_idle:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=f"{settings.streaming.trigger_s} seconds")
