"""A command that daemonizes itself: noticed, said, and what it left stopped.

A wrapper that forks the real server into the background and exits 0 (``ollama
serve &``, a double fork, ``brew services start``) escapes supervision: n3d sees
its child exit, and the server it left answers on the port, where mode auto used
to adopt it as someone else's. n3d can never own such a server: it cannot see
its exit, and its output goes nowhere (or to a pipe n3d closes).

The proof is the spawn's ``N3D_INSTANCE`` marker (:mod:`n3d.supervisor.groups`):
after our child exited with code 0, live processes still carry it. Those that
left serve's process group (``setsid``) escaped for certain; those still in it
(``ollama serve &`` in a shell script) count only if a server answers at the base
URL, for which a start waits a little (the backgrounded server may still be
coming up), while a run does not (runners of a serve that was just told to stop
may linger a moment, answering nothing). Then the start is
``fatal`` (retrying repeats it), ``last_error`` says so, and a warning event
``server.daemonized`` names the fix: run the server in the foreground. What the
command left is stopped (SIGKILL, each process checked by psutil before its
signal): it is provably ours, and it would keep the port from the next start.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from contextlib import suppress

import anyio
import psutil
import structlog

from n3d.supervisor.groups import marked_processes
from n3d.supervisor.process import OllamaProcess

__all__ = ["daemonized"]

log = structlog.get_logger("n3d.supervisor")

_POLL_S = 0.1
FIX = "run the server in the foreground (e.g. `ollama serve`, or `exec` it from a wrapper)"


def _split(child: OllamaProcess) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """Processes carrying the child's marker: (outside its group, inside it); blocking."""
    outside: list[psutil.Process] = []
    inside: list[psutil.Process] = []
    for proc in marked_processes(child.instance):
        if proc.pid == child.pid:
            continue
        try:
            group = os.getpgid(proc.pid)
        except OSError:
            continue
        (inside if group == child.pgid else outside).append(proc)
    return outside, inside


def _kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with suppress(psutil.Error):
            proc.kill()  # psutil checks first that the pid still names this process
    with suppress(psutil.Error):
        psutil.wait_procs(procs, timeout=2.0)


async def _answers_within(answers: Callable[[], Awaitable[bool]], wait_s: float) -> bool:
    if await answers():  # once in any case: a wait of 0 still asks
        return True
    with anyio.move_on_after(wait_s):
        while True:
            await anyio.sleep(_POLL_S)  # a probe is a network call: no event to wait on
            if await answers():
                return True
    return False


async def daemonized(
    child: OllamaProcess, answers: Callable[[], Awaitable[bool]], *, wait_s: float = 0.0
) -> str | None:
    """If ``child`` exited 0 and left a server behind, why (and it is stopped); else None.

    ``answers`` is a forced health check of the base URL, tried for up to
    ``wait_s`` seconds (at least once) when only processes in the group remain.
    Call before the child's group is stopped: what lingers there is evidence.
    """
    status = child.exit_status
    if status is None or status.returncode != 0 or not child.instance:
        return None
    outside, inside = await anyio.to_thread.run_sync(_split, child)
    if not outside and not (inside and await _answers_within(answers, wait_s)):
        return None
    left = sorted(p.pid for p in outside + inside)
    reason = (
        f"the command exited 0 and left {len(left)} process(es) running (pid "
        f"{', '.join(map(str, left))}): it daemonized itself, so n3d cannot supervise it; "
        f"{FIX}"
    )
    log.warning("server.daemonized", command=list(child.command), pids=left, fix=FIX)
    await anyio.to_thread.run_sync(_kill_all, outside)  # the group's are stopped with it
    return reason
