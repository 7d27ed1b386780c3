"""A real `n3d run --simulate` subprocess with its control socket, for end-to-end tests.

The harness is :class:`n3d.testing.DaemonProcess`, shared with bench/ and the drills.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from n3d.testing import DaemonProcess as Daemon
from n3d.testing import wait_until

__all__ = ["Daemon", "wait_until"]


@pytest.fixture
def short_home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="n3e", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon_factory(short_home: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(name: str = "d", **kw: Any) -> Daemon:
        home = short_home / name
        home.mkdir(mode=0o700)
        d = Daemon(home, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    return daemon_factory().start().wait_ready()
