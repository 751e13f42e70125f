"""Atomic writes: the old file survives a failed write; NaN never reaches a results file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from audit.atomic import write_atomic, write_json_atomic


def test_json_round_trip(tmp_path: Path) -> None:
    doc = {"b": [1, 2.5, None], "a": "\u00e9<>\"'"}
    path = write_json_atomic(tmp_path / "sub" / "x.json", doc)
    assert json.loads(path.read_text(encoding="utf-8")) == doc


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "x.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "x.json", {"v": 1})

    def boom(fh):
        fh.write(b'{"v": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(path, boom)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_nan_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "x.json", {"v": float("nan")})
    assert not (tmp_path / "x.json").exists()
