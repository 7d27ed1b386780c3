"""Process groups and trees: who is in one, and killing all of them for sure.

n3d starts serve in a new session, so serve's pid is its group id and Ollama's
runners (which do not change group) are members. Killing the group is the one
way to reach runners after serve itself died. Zombies count as gone: they hold
no memory, and their parent (or init) reaps them.

:func:`descendant_pids` walks serve's tree for `status`: on Linux from
``/proc/PID/task/TID/children`` (~0.05 ms), where psutil's ``children()``
reads every process on the machine to build a parent map (~1 ms at 70
processes, growing with their number).

Every spawn carries a random marker in its environment, ``N3D_INSTANCE``, which
its descendants inherit (Ollama starts runners with ``os.Environ()``): the proof
that a process came from that spawn, whatever its group, pid or name.
:func:`instance_of` reads it back (``/proc/PID/environ``, or what psutil has on
other systems); :func:`marked_processes` finds every live carrier.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import suppress

import anyio
import psutil

__all__ = [
    "INSTANCE_VAR",
    "VERIFY_S",
    "descendant_pids",
    "group_members",
    "instance_of",
    "kill_group",
    "marked_processes",
]

VERIFY_S = 2.0  # how long to wait for SIGKILLed members to vanish
INSTANCE_VAR = "N3D_INSTANCE"  # the marker of one spawn, in its environment
# Kernels built without CONFIG_PROC_CHILDREN (and macOS) have no children files.
_PROC_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _child_pids(pid: int) -> list[int]:
    """Children of every thread of ``pid``; none once it has gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as listing:
                found.extend(int(child) for child in listing.read().split())
        except OSError:
            continue  # that thread ended meanwhile
    return found


def descendant_pids(pid: int) -> list[int] | None:
    """Every descendant of ``pid`` (children first), or None where /proc cannot tell."""
    if not _PROC_CHILDREN:
        return None
    found, todo = [], [pid]
    while todo:
        for child in _child_pids(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


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


def instance_of(proc: psutil.Process) -> str | None:
    """The ``N3D_INSTANCE`` in ``proc``'s environment ("" if absent or gone); None if unreadable."""
    try:
        return str(proc.environ().get(INSTANCE_VAR, ""))
    except psutil.NoSuchProcess:  # gone, or a zombie (also a NoSuchProcess): nothing to stop
        return ""
    except (psutil.Error, OSError):  # AccessDenied: another user's, or not readable here
        return None


def marked_processes(instance: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries ``instance``; blocking."""
    if not instance:
        return []
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and instance_of(proc) == instance:
                found.append(proc)
        except psutil.Error:
            continue
    return found


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
