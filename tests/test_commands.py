"""The three commands exist once installed, and say honestly what they can't do yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from n3d import __version__

BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_n3d_version() -> None:
    result = _run(str(BIN / "n3d"), "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"n3d {__version__}"


def test_n3d_without_a_command_is_a_usage_error() -> None:
    result = _run(str(BIN / "n3d"))
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_python_dash_m_n3d_is_the_same_command() -> None:
    result = _run(sys.executable, "-m", "n3d", "--version")
    assert result.returncode == 0 and __version__ in result.stdout
