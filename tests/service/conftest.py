"""Fixtures for `n3d service`: a throwaway HOME, and the command run in-process."""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from n3d.cli.service import add_service_commands, run_service

RunService = Callable[..., int]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """What `n3d service` sees: only HOME and PATH, as in a fresh login."""
    return {"HOME": str(home), "PATH": os.environ.get("PATH", os.defpath)}


@pytest.fixture
def fake_n3d(tmp_path: Path) -> Path:
    """An executable named n3d, so rendered files point at something real."""
    path = tmp_path / "bin" / "n3d"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _parser() -> argparse.ArgumentParser:
    # The same shape as n3d.cli: a global --config, then `service ACTION ...`.
    parser = argparse.ArgumentParser(prog="n3d")
    parser.add_argument("--config", type=Path, default=None)
    commands = parser.add_subparsers(dest="command")
    add_service_commands(commands)
    return parser


@pytest.fixture
def n3d_service(env: dict[str, str]) -> RunService:
    """`n3d [--config P] service ...` in-process with the fixture's environment."""

    def run(*argv: str, environ: dict[str, str] | None = None) -> int:
        args = _parser().parse_args(argv)
        return run_service(args, env=env if environ is None else environ)

    return run
