"""Atomic file writes: the whole new file or the old one, never a part, and the mode a plain open() gives."""

from __future__ import annotations

import json
import os
import stat

import pytest

from unpaired.io import atomic_json, atomic_write


def test_atomic_json_round_trips_and_replaces(tmp_path):
    path = tmp_path / "sub" / "report.json"
    atomic_json(path, {"a": 1})
    atomic_json(path, {"a": 2, "b": [1, 2]})
    assert json.loads(path.read_text()) == {"a": 2, "b": [1, 2]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"old")

    def fail_halfway(handle):
        handle.write(b"new, but only ha")
        raise ValueError("the writer broke")

    with pytest.raises(ValueError, match="the writer broke"):
        atomic_write(path, fail_halfway)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_written_file_has_the_mode_open_gives(tmp_path):
    atomic_write(tmp_path / "atomic.txt", lambda handle: handle.write(b"x"))
    (tmp_path / "plain.txt").write_bytes(b"x")
    mode = stat.S_IMODE(os.stat(tmp_path / "atomic.txt").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not mkstemp's 0600
