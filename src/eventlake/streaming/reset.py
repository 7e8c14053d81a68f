"""``eventlake checkpoints reset``: start a query on a new checkpoint, explicitly.

A checkpoint may have to go: Spark refuses to restart a query whose plan changed incompatibly, or the
checkpoint is damaged. Deleting it by hand used to restart the query at batch 0 and from the topic's
start: bronze was appended again, and the guards took the new batches for replays and skipped their
gold and DQ writes. A reset instead:

- refuses while a pipeline writes the lake (the lake lock);
- records where the new checkpoint starts reading: by default the offsets the old checkpoint's last
  committed batch read up to (``committed``: nothing is read twice, nothing skipped), or ``latest``
  (the backlog is skipped: those records reach no layer of the lake);
- removes the checkpoint. The next run is a new run of the query (a new Spark query id), whose batch
  keys continue after the old run's (``streaming.state.run_base``).

A full reprocessing from the topic's start is not a reset: write a new lake (and database), or
rebuild days with ``eventlake batch backfill``. Local checkpoints only (object-store checkpoints
are refused with one line).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Literal

from eventlake.config import Settings
from eventlake.errors import EventlakeError
from eventlake.streaming.lock import LakeLock
from eventlake.streaming.paths import checkpoint, committed_offsets
from eventlake.streaming.pipeline import query_name
from eventlake.streaming.state import ensure_state_tables, record_reset

log = logging.getLogger(__name__)

Start = Literal["committed", "latest"]


def reset_checkpoints(settings: Settings, postgres_url: str, sources: list[str], start: Start) -> dict[str, str]:
    """Reset the checkpoints of ``sources``' queries; returns where each new checkpoint starts."""
    locations = {s: checkpoint(settings, query_name(s)) for s in sources}
    remote = [loc for loc in locations.values() if "://" in loc]
    if remote:
        raise EventlakeError(
            f"checkpoint {remote[0]} is not local", "reset works on local checkpoints (streaming.checkpoint_dir)"
        )
    lock = LakeLock(postgres_url, settings.lake_uri).acquire()  # no pipeline may run meanwhile
    try:
        ensure_state_tables(postgres_url)
        out = {}
        for source, location in locations.items():
            starting = "latest" if start == "latest" else (committed_offsets(location) or "earliest")
            record_reset(postgres_url, query_name(source), starting)
            if Path(location).exists():
                shutil.rmtree(location)
            log.info("checkpoint reset", extra={"query": query_name(source), "starting_offsets": starting})
            out[source] = starting
        return out
    finally:
        lock.release()
