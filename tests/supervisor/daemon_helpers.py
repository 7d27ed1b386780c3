"""`n3d run` as a real subprocess, awaited from async tests (imported, not collected).

The process handling is :class:`n3d.testing.DaemonProcess`; this adds the waits the
supervisor tests make from inside an anyio test.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from n3d.testing import DaemonProcess

from .helpers import FAST, eventually

Event = dict[str, Any]


class N3dProcess(DaemonProcess):
    """One `n3d run --simulate` under ``home`` with the FAST config (unless one exists).

    The socket is n3d's default, in the runtime dir; serve listens on ``port``.
    """

    def __init__(self, home: Path, port: int, *, name: str = "n3d", **env: str) -> None:
        config = None if (home / "n3d.toml").exists() else FAST
        super().__init__(home, config=config, port=port, name=name, default_socket=True, **env)

    @property
    def config(self) -> Path:
        return self.config_path

    async def wait_for(self, check: Callable[[list[Event]], Any], within_s: float = 20) -> Any:
        try:
            return await eventually(lambda: check(self.events()), within_s=within_s)
        except TimeoutError as exc:
            raise AssertionError(f"timed out after {within_s}s; {self.describe()}") from exc

    async def running(self, within_s: float = 20) -> int:
        """Wait for state running; returns serve's pid."""
        event = await self.wait_for(
            lambda evs: next(
                (
                    e
                    for e in reversed(evs)
                    if e.get("event") == "server.state" and e["to"] == "running"
                ),
                None,
            ),
            within_s,
        )
        return int(event["pid"])

    def signal(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    async def exit_code(self, within_s: float = 20) -> int:
        assert self.proc is not None
        proc = self.proc
        with anyio.fail_after(within_s):
            return await anyio.to_thread.run_sync(proc.wait)
