"""Fixtures for the supervisor tests: anyio on asyncio, JSON logs, killed process groups."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from n3d.logs import configure_logging

from .daemon_helpers import N3dProcess
from .helpers import JsonLogs, start_simulator


@pytest.fixture
def json_logs() -> JsonLogs:
    """n3d's real JSON logging, written to memory (tests/conftest.py resets it)."""
    logs = JsonLogs()
    configure_logging("json", "debug", file=logs.buffer)
    return logs


@pytest.fixture
def wait_never_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children spawned from now on never report their exit, as if stuck in the kernel.

    The lowest level n3d sees: the process object's ``wait()`` (a waitpid) hangs,
    as it does for serve in uninterruptible sleep (D state) after SIGKILL. The
    real process still dies; n3d cannot know. Use with a ``timeout`` mark of
    method "thread": without a bound on that wait, the test would hang for good.
    """
    spawn = anyio.open_process

    async def open_stuck(*args: Any, **kwargs: Any) -> Any:
        process = await spawn(*args, **kwargs)
        process.wait = anyio.sleep_forever
        return process

    monkeypatch.setattr(anyio, "open_process", open_stuck)


@pytest.fixture
def pgids() -> Iterator[list[int]]:
    """Process groups a test started; SIGKILLed at teardown even if the test failed."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def foreign() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start simulators n3d did not start; their groups are killed and reaped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(home: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
        proc = start_simulator(home, port, **env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture
def n3d() -> Iterator[Callable[..., N3dProcess]]:
    """Make `n3d run` subprocesses; all are killed (with their groups) at teardown."""
    made: list[N3dProcess] = []

    def make(home: Path, port: int, **env: str) -> N3dProcess:
        proc = N3dProcess(home, port, name=f"n3d{len(made)}", **env)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.cleanup()


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process (think: a reused pid) that must survive."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            start_new_session=True)
    yield proc
    proc.kill()
    proc.wait(10)
