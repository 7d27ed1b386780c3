"""`ollama.pid`, and what to do with a child a killed n3d left behind.

While n3d owns a server it keeps ``ollama.pid`` in the runtime dir: the pid on the
first line (for humans and tools), then one JSON object with the pid, its process
group, its create time, its command line and its instance marker (the random
``N3D_INSTANCE`` value n3d put in that spawn's environment, which Ollama's runners
inherit). If n3d was SIGKILLed the file stays.

The next n3d reads it and signals only processes it can prove that serve started;
pids and process groups are reused (``kernel.pid_max`` may be 32768), so neither
a pid, a group id nor a command line proves anything alone:

* serve: the pid exists, its create time equals the recorded one, and its
  environment carries the recorded marker (where the environment cannot be read,
  or the file predates markers: its command line is the recorded one or looks
  like Ollama; the create time already ties it to that spawn).
* a runner: a member of the recorded group, no older than serve, whose
  environment carries the recorded marker; where it cannot be read (another
  user's process, some platforms), one whose parent chain reaches the
  verified live serve. A member proven by neither is left alone, and logged.

Found orphans are stopped, never adopted in modes auto and managed: their stdout
and stderr pipes died with the old n3d, so nobody can drain them, and a Go program
(Ollama) is killed by SIGPIPE at its next log line on a broken stdout or stderr.
A fresh child is the only one n3d can fully own. Mode external never stops anything:
the orphan is simply the server that answers (or not).

The file itself (its format, and writing it so that nothing can end n3d) is
:mod:`n3d.supervisor.pidfile`. With several servers each supervisor handles its
own file; :func:`stop_stray_orphans` handles the files no server of the config
claims (a server removed from the config while its serve outlived a killed n3d).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import anyio
import psutil
import structlog

from n3d.supervisor.groups import VERIFY_S, group_members, instance_of
from n3d.supervisor.pidfile import (
    PidRecord,
    pid_files,
    read_pid_file,
    remove_pid_file,
    write_pid_file,
)

__all__ = [
    "OrphanOutcome",
    "PidRecord",
    "find_orphans",
    "looks_like_ollama",
    "read_pid_file",
    "remove_pid_file",
    "stop_orphans",
    "stop_stray_orphans",
    "write_pid_file",
]

log = structlog.get_logger("n3d.supervisor.orphans")

# Words in a command line that mean "Ollama or a stand-in for it": serve, runners
# (`ollama runner`, `ollama_llama_server`, upstream `llama-server`) and the simulator.
_OLLAMA_WORDS = ("ollama", "llama-server", "llama_server", "n3d.sim")
_CREATE_TIME_TOLERANCE_S = 0.01  # psutil's create time is in clock ticks (10 ms)


def looks_like_ollama(cmdline: tuple[str, ...] | list[str], recorded: tuple[str, ...] = ()) -> bool:
    """Whether a command line is the recorded one, or runs Ollama (or the simulator).

    Only the program's own name counts (``argv[0]``'s base name, or the module
    after ``-m``), never a word anywhere in an argument: ``tail -f
    ~/.ollama/logs/server.log``, or a Python whose virtualenv lives under a folder
    named ``ollama``, is not Ollama.
    """
    if recorded and tuple(cmdline) == recorded:
        return True
    if not cmdline:
        return False
    program = os.path.basename(cmdline[0])
    if any(word in program for word in _OLLAMA_WORDS):
        return True
    modules = [cmdline[i + 1] for i, arg in enumerate(cmdline[:-1]) if arg == "-m"]
    return any(m == "n3d.sim" or m.startswith("n3d.sim.") for m in modules)


def _is_serve(proc: psutil.Process, record: PidRecord) -> bool:
    try:
        created = proc.create_time()
        cmdline = proc.cmdline()
    except psutil.Error:
        return False
    if abs(created - record.create_time) > _CREATE_TIME_TOLERANCE_S:
        return False  # the pid was reused
    marker = instance_of(proc) if record.instance else None
    if marker is not None:
        return marker == record.instance
    return looks_like_ollama(cmdline, record.cmdline)


def _descends_from(proc: psutil.Process, serve: psutil.Process) -> bool:
    try:
        return any(p.pid == serve.pid for p in proc.parents()) and serve.is_running()
    except psutil.Error:
        return False


def _is_runner(proc: psutil.Process, record: PidRecord, serve: psutil.Process | None) -> bool:
    try:
        if proc.create_time() + _CREATE_TIME_TOLERANCE_S < record.create_time:
            return False  # older than the old serve: cannot be one of its runners
    except psutil.Error:
        return False
    marker = instance_of(proc) if record.instance else None
    if marker is not None:
        return marker == record.instance
    return serve is not None and _descends_from(proc, serve)


def find_orphans(record: PidRecord) -> tuple[psutil.Process | None, list[psutil.Process]]:
    """The old serve (if it is still the same process) and its proven runners.

    Blocking (it scans /proc): call it in a worker thread. Members of the group
    that cannot be proven to be serve's are logged as ``orphan.unproven`` and
    never returned.
    """
    serve: psutil.Process | None = None
    with suppress(psutil.Error):
        candidate = psutil.Process(record.pid)
        if _is_serve(candidate, record):
            serve = candidate
    runners: list[psutil.Process] = []
    unproven: list[psutil.Process] = []
    for proc in group_members(record.pgid):
        if proc.pid == record.pid:
            continue
        (runners if _is_runner(proc, record, serve) else unproven).append(proc)
    if unproven:
        log.warning(
            "orphan.unproven",
            pgid=record.pgid,
            pids=[p.pid for p in unproven],
            detail="in the recorded process group, but not provably started by the old "
            "serve (the group id may have been reused): left alone",
        )
    return serve, runners


@dataclass(frozen=True, slots=True)
class OrphanOutcome:
    """``action``: "none" (no file), "stale" (nothing of ours left), "stopped"."""

    action: str
    pid: int | None = None
    killed: int = 0


async def stop_orphans(path: Path, *, stop_timeout_s: float) -> OrphanOutcome:
    """Find the previous child from ``path`` and stop it and its runners (bounded).

    SIGTERM to a verified serve, up to ``stop_timeout_s`` for it to exit, then
    SIGKILL to each proven process (psutil checks before each signal that the pid
    still names the same process), looking again for runners serve started
    meanwhile, for at most ``VERIFY_S``. Never ``killpg``: a reused group id would
    reach strangers. Removes the file afterwards.
    """
    record = read_pid_file(path)
    if record is None:
        remove_pid_file(path)  # unreadable: not ours to act on, but not useful either
        return OrphanOutcome("none")
    serve, members = await anyio.to_thread.run_sync(find_orphans, record)
    if serve is None and not members:
        log.info("orphan.stale_pid_file", pid=record.pid, detail="no process of ours left")
        remove_pid_file(path)
        return OrphanOutcome("stale", record.pid)
    log.warning("orphan.found", pid=record.pid, serve_alive=serve is not None, runners=len(members))
    proven = {p.pid: p for p in ([serve] if serve is not None else []) + members}
    if serve is not None:
        with suppress(psutil.Error):
            serve.send_signal(signal.SIGTERM)
        with suppress(psutil.Error):
            await anyio.to_thread.run_sync(_wait_gone, serve, stop_timeout_s)
    deadline = time.monotonic() + VERIFY_S
    while True:
        alive = [p for p in proven.values() if _kill(p)]
        if not alive or time.monotonic() >= deadline:
            break
        await anyio.to_thread.run_sync(_wait_all, alive, 0.1)
        # Runners serve started before it died are proven by their marker alone.
        again, more = await anyio.to_thread.run_sync(find_orphans, record)
        for proc in ([again] if again is not None else []) + more:
            proven.setdefault(proc.pid, proc)
    remove_pid_file(path)
    log.warning("orphan.stopped", pid=record.pid, processes=len(proven))
    return OrphanOutcome("stopped", record.pid, len(proven))


async def stop_stray_orphans(
    directory: Path, *, claimed: Collection[Path], stop_timeout_s: float
) -> list[OrphanOutcome]:
    """:func:`stop_orphans` for every pid file in ``directory`` no server ``claimed``.

    Each server's own file is its supervisor's to handle (at its start); this is
    for the files of servers no longer in the config. Bounded like
    :func:`stop_orphans`, one file after another.
    """
    mine = {p.name for p in claimed}
    outcomes: list[OrphanOutcome] = []
    for path in pid_files(directory):
        if path.name not in mine:
            log.info("orphan.stray_pid_file", path=str(path), detail="no server of the config")
            outcomes.append(await stop_orphans(path, stop_timeout_s=stop_timeout_s))
    return outcomes


def _kill(proc: psutil.Process) -> bool:
    """SIGKILL ``proc`` if it is still the same, living process; whether it was."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        proc.kill()
    except psutil.Error:
        return False
    return True


def _wait_gone(proc: psutil.Process, timeout_s: float) -> None:
    with suppress(psutil.TimeoutExpired):
        proc.wait(timeout_s)


def _wait_all(procs: list[psutil.Process], timeout_s: float) -> None:
    with suppress(psutil.Error):
        psutil.wait_procs(procs, timeout=timeout_s)
