"""Checkpoint housekeeping before a query starts."""

from __future__ import annotations

from pathlib import Path

from eventlake.streaming.paths import clear_interrupted_writes


def test_a_killed_querys_temporary_log_files_are_removed_and_committed_entries_kept(tmp_path: Path) -> None:
    offsets, commits = tmp_path / "offsets", tmp_path / "commits"
    offsets.mkdir()
    commits.mkdir()
    # What kill -9 during the write of batch 1's offsets leaves (seen in CI, batch 0 there).
    (offsets / "0").write_text("v1\n{}")
    (offsets / ".0.crc").write_text("crc")
    (offsets / ".1.ded63f66-4195-4929-ab44-fb61110f16ec.tmp").write_text("")
    (offsets / "..1.ded63f66-4195-4929-ab44-fb61110f16ec.tmp.crc").write_text("")
    (commits / "0").write_text("v1\n{}")
    removed = clear_interrupted_writes(str(tmp_path))
    assert len(removed) == 2
    assert sorted(p.name for p in offsets.iterdir()) == [".0.crc", "0"]
    assert [p.name for p in commits.iterdir()] == ["0"]
    assert clear_interrupted_writes("s3a://bucket/checkpoints/q") == []
