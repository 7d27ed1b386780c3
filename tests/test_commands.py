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


def test_n3d_run_with_a_bad_config_says_why_and_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "n3d.toml"
    config.write_text("[server]\nmode = 'sometimes'\nstart_timeout = 'soon'\n")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path)}
    result = subprocess.run(
        [str(BIN / "n3d"), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert str(config) in result.stderr and "server.mode" in result.stderr
    assert result.stdout == ""


def test_n3d_run_with_unparsable_toml_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "n3d.toml"
    config.write_text("[ollama]\nport = 11434\nhost = \n")
    result = subprocess.run(
        [str(BIN / "n3d"), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 78
    assert str(config) in result.stderr and "line 3" in result.stderr
