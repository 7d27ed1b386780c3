"""A command that daemonizes itself is named as such, never adopted as someone else's."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from n3d.state import ServerState

from .helpers import (
    JsonLogs,
    answers,
    eventually,
    free_port,
    make,
    states,
    supervising,
    until,
)

S = ServerState

# Forks the simulator into a session of its own (as a double fork does) and exits 0.
FORKS_AWAY = (
    sys.executable,
    "-c",
    "import subprocess, sys; subprocess.Popen([sys.executable, '-m', 'n3d.sim', 'serve'], "
    "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)",
)

pytestmark = pytest.mark.slow
# `ollama serve &` in a shell script: the server stays in the group; the script exits 0.
BACKGROUNDS = ("/bin/sh", "-c", f"{sys.executable} -m n3d.sim serve >/dev/null 2>&1 & exit 0")

# Backgrounds it, waits until it answers, then exits 0: n3d saw `running` first.
WAITS_THEN_EXITS = (
    sys.executable,
    "-c",
    "import os, subprocess, sys, time, urllib.request\n"
    "subprocess.Popen([sys.executable, '-m', 'n3d.sim', 'serve'])\n"
    "url = 'http://' + os.environ['OLLAMA_HOST'] + '/'\n"
    "while True:\n"
    "    try:\n"
    "        urllib.request.urlopen(url, timeout=1); break\n"
    "    except OSError:\n"
    "        time.sleep(0.05)\n"
    "time.sleep(1)\n",
)


def listening_on(port: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("OLLAMA_HOST") == f"127.0.0.1:{port}":
                found.append(proc)
    return found


@pytest.fixture
def port() -> Iterator[int]:
    """A free port; whatever was started to listen on it is killed at teardown."""
    chosen = free_port()
    yield chosen
    for proc in listening_on(chosen):
        with contextlib.suppress(psutil.Error):
            proc.kill()


@pytest.mark.parametrize("mode", ["managed", "auto"])
@pytest.mark.parametrize(
    "command",
    [FORKS_AWAY, BACKGROUNDS, WAITS_THEN_EXITS],
    ids=["setsid", "background", "after-running"],
)
async def test_a_command_that_daemonizes_itself_is_fatal_with_the_fix_named(
    tmp_path: Path, pgids: list[int], json_logs: JsonLogs, port: int, mode: str,
    command: tuple[str, ...],
) -> None:
    sup = make(tmp_path, port, mode=mode, command=command)
    async with supervising(sup, pgids):
        snap = await until(sup, S.FATAL, S.EXTERNAL, within_s=30)
        assert snap.state is S.FATAL, snap  # never adopted as someone else's server
        assert ("running" in states(sup)) == (command is WAITS_THEN_EXITS)
        assert "daemonized itself" in snap.reason and "foreground" in snap.reason
        assert snap.last_error is not None and "daemonized itself" in snap.last_error
        warning = next(e for e in json_logs.events() if e["event"] == "server.daemonized")
        assert warning["level"] == "warning" and "foreground" in warning["fix"]
        # What it left running was ours, so it was stopped: the port is free again.
        await eventually(lambda: not listening_on(port) and not answers(port))
