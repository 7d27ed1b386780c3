"""Process groups: who is in one, and killing all of them for sure.

n3d starts serve in a new session, so serve's pid is its group id and Ollama's
runners (which do not change group) are members. Killing the group is the one
way to reach runners after serve itself died. Zombies count as gone: they hold
no memory, and their parent (or init) reaps them.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import suppress

import anyio
import psutil  # type: ignore[import-untyped]  # no stubs in the dev deps (yet)

__all__ = ["VERIFY_S", "group_members", "kill_group"]

VERIFY_S = 2.0  # how long to wait for SIGKILLed members to vanish


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _killpg(pgid: int) -> None:
    # ESRCH: the group is already empty (or only zombies remain).
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def kill_group(pgid: int, *, verify_s: float = VERIFY_S) -> int:
    """SIGKILL every member of ``pgid`` and wait until none is left; returns survivors."""
    deadline = time.monotonic() + verify_s
    while True:
        _killpg(pgid)
        members = await anyio.to_thread.run_sync(group_members, pgid)
        if not members or time.monotonic() >= deadline:
            return len(members)
        await anyio.sleep(0.02)
