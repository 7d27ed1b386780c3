"""Private directories per platform, verified before use (research/ecosystem.md §5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from n3d import paths
from n3d.errors import PathError


@pytest.fixture
def linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "is_macos", lambda: False)


@pytest.mark.usefixtures("linux")
def test_linux_xdg_locations(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "XDG_CONFIG_HOME": "/cfg",
        "XDG_STATE_HOME": "/state",
    }
    assert Path(paths.runtime_dir(env)) == Path("/run/user/1000/n3")
    assert Path(paths.config_file(env)) == Path("/cfg/n3/n3d.toml")
    assert Path(paths.state_dir(env)) == Path("/state/n3")
    assert Path(paths.socket_path("", env)) == Path("/run/user/1000/n3/n3d.sock")


@pytest.mark.usefixtures("linux")
def test_linux_fallbacks_ignore_empty_and_relative_xdg(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": "", "XDG_CONFIG_HOME": "rel/dir"}
    assert Path(paths.runtime_dir(env)) == Path(f"/tmp/n3-{os.geteuid()}")
    assert Path(paths.config_dir(env)) == tmp_path / ".config" / "n3"
    assert Path(paths.state_dir(env)) == tmp_path / ".local" / "state" / "n3"


def test_macos_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(paths, "is_macos", lambda: True)
    env = {"HOME": "/Users/u", "TMPDIR": "/var/folders/xy/T/"}
    assert Path(paths.runtime_dir(env)) == Path("/var/folders/xy/T/n3")
    assert Path(paths.config_file(env)) == Path("/Users/u/Library/Application Support/n3/n3d.toml")
    assert Path(paths.state_dir(env)) == Path("/Users/u/Library/Application Support/n3")


def test_explicit_environment_wins(tmp_path: Path) -> None:
    env = {"N3D_SOCKET": "/s/x.sock", "N3D_CONFIG": "/c/x.toml", "HOME": str(tmp_path)}
    assert Path(paths.socket_path("/configured.sock", env)) == Path("/s/x.sock")
    assert Path(paths.socket_path("/configured.sock", {"HOME": str(tmp_path)})) == Path(
        "/configured.sock"
    )
    assert Path(paths.config_file(env)) == Path("/c/x.toml")


def test_private_dir_is_created_0700(tmp_path: Path) -> None:
    target = tmp_path / "a" / "n3"
    assert paths.ensure_private_dir(target) == target
    assert (target.stat().st_mode & 0o777) == 0o700
    paths.ensure_private_dir(target)  # idempotent


def test_loose_modes_are_refused_not_fixed(tmp_path: Path) -> None:
    target = tmp_path / "n3"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    with pytest.raises(PathError, match="chmod 700"):
        paths.ensure_private_dir(target)
    assert (target.stat().st_mode & 0o777) == 0o755


def test_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "n3"
    link.symlink_to(real)
    with pytest.raises(PathError, match="symlink"):
        paths.ensure_private_dir(link)


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "n3"
    target.write_text("")
    with pytest.raises(PathError, match="not a directory"):
        paths.ensure_private_dir(target)


def test_foreign_owner_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "n3"
    target.mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(target).st_uid + 1)
    with pytest.raises(PathError, match="owned by uid"):
        paths.ensure_private_dir(target)
