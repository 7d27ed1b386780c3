"""The one atomic writer: temp file in the same dir, fsync, rename, fsync of the dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from n3d.atomic import write_atomically


def test_write_replaces_the_file_with_the_mode_asked_for(tmp_path: Path) -> None:
    target = tmp_path / "warm.json"
    target.write_text("old")
    write_atomically(target, "new\n", mode=0o644)
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o644
    write_atomically(target, b"bytes")
    assert target.read_bytes() == b"bytes" and target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warm.json"]  # no temp left


def test_data_and_directory_are_fsynced_before_and_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        steps.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def recording_replace(src: str, dst: Path) -> None:
        steps.append("rename")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    write_atomically(tmp_path / "f", "x")
    assert steps == ["fsync file", "rename", "fsync dir"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "warm.json"
    target.write_text("old")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        write_atomically(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warm.json"]


def test_a_missing_directory_is_an_os_error_for_the_caller_to_translate(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "nowhere" / "f", "x")
