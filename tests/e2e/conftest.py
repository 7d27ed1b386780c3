"""A real `n3d run --simulate` subprocess with its control socket, for end-to-end tests.

The harness is :class:`n3d.testing.DaemonProcess`, shared with bench/ and the drills.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from n3d.testing import DaemonProcess as Daemon
from n3d.testing import wait_until

__all__ = ["Daemon", "wait_until"]


@pytest.fixture
def daemon_factory(short_dir: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(name: str = "d", **kw: Any) -> Daemon:
        home = short_dir / name
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
