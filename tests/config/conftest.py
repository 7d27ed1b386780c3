"""Helpers for the config tests: config files in tmp_path, never the real home."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

WriteConfig = Callable[[str], Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write TOML text to `tmp_path/n3d.toml` and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "n3d.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def home_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose home and XDG dirs all live under tmp_path."""
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "XDG_RUNTIME_DIR": str(tmp_path / "xdg-run"),
    }
