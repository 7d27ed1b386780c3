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
  user's process, a zombie, some platforms), one whose parent chain reaches the
  verified live serve. A member proven by neither is left alone, and logged.

Found orphans are stopped, never adopted in modes auto and managed: their stdout
and stderr pipes died with the old n3d, so nobody can drain them, and a Go program
(Ollama) is killed by SIGPIPE at its next log line on a broken stdout or stderr.
A fresh child is the only one n3d can fully own. Mode external never stops anything:
the orphan is simply the server that answers (or not).

Writing and removing the file never raise: a runtime dir that vanished while n3d
ran (a ``/tmp`` cleaner, logind at logout) is created again with the same checks
as at start-up, and anything else is logged; the server runs on either way.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import anyio
import psutil  # type: ignore[import-untyped]  # no stubs in the dev deps (yet)
import structlog

from n3d.errors import PathError
from n3d.paths import ensure_private_dir
from n3d.supervisor.groups import VERIFY_S, group_members, instance_of
from n3d.supervisor.process import OllamaProcess

__all__ = [
    "OrphanOutcome",
    "PidRecord",
    "find_orphans",
    "looks_like_ollama",
    "read_pid_file",
    "remove_pid_file",
    "stop_orphans",
    "write_pid_file",
]

log = structlog.get_logger("n3d.supervisor.orphans")

# Words in a command line that mean "Ollama or a stand-in for it": serve, runners
# (`ollama runner`, `ollama_llama_server`, upstream `llama-server`) and the simulator.
_OLLAMA_WORDS = ("ollama", "llama-server", "llama_server", "n3d.sim")
_CREATE_TIME_TOLERANCE_S = 0.01  # psutil's create time is in clock ticks (10 ms)


@dataclass(frozen=True, slots=True)
class PidRecord:
    """What ``ollama.pid`` says about the child a previous n3d started.

    ``instance`` is the spawn's ``N3D_INSTANCE`` marker ("" in files written
    before markers existed).
    """

    pid: int
    pgid: int
    create_time: float
    cmdline: tuple[str, ...]
    instance: str = ""

    @classmethod
    def of(cls, child: OllamaProcess) -> PidRecord:
        return cls(child.pid, child.pgid, child.create_time, child.command, child.instance)


def _write(path: Path, record: PidRecord) -> None:
    data = {
        "pid": record.pid,
        "pgid": record.pgid,
        "create_time": record.create_time,
        "cmdline": list(record.cmdline),
        "instance": record.instance,
    }
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{record.pid}\n{json.dumps(data)}\n")
    os.replace(tmp, path)


def write_pid_file(path: Path, record: PidRecord) -> bool:
    """Write ``ollama.pid`` atomically (write, then rename), mode 0600; never raises.

    Its directory is checked first as at start-up (ours, not a symlink, private:
    the runtime dir may have been removed and taken by someone else since), and
    created again if it is gone, with ``runtime_dir.recreated`` saying what went
    with it. Returns whether the file was written; when not, the error
    ``pid_file.write_failed`` says why (the server runs on, but a killed n3d
    would leave it for no one to clean up).
    """
    directory = path.parent
    try:
        gone = not os.path.lexists(directory)
        # Only the last component: a missing $XDG_RUNTIME_DIR is logind's to make.
        ensure_private_dir(directory, parents=False)
        if gone:
            log.warning(
                "runtime_dir.recreated",
                path=str(directory),
                detail="the runtime dir was removed while n3d ran (a /tmp cleaner, or "
                "logind at logout): created again; n3d.lock and n3d.pid went with it, "
                "and the control socket if it lived there: restart n3d to restore them",
            )
        _write(path, record)
    except (OSError, PathError) as exc:
        error = str(exc) if isinstance(exc, PathError) else f"{exc.strerror or exc}"
        log.error(
            "pid_file.write_failed",
            path=str(path),
            error=error,
            detail="the server runs on; if n3d is killed, the next one cannot find it",
        )
        return False
    return True


def read_pid_file(path: Path) -> PidRecord | None:
    """The record in ``path``; None if missing or unreadable (a foreign or broken file)."""
    try:
        lines = path.read_text().splitlines()
        data = json.loads(lines[1])
        record = PidRecord(
            int(data["pid"]),
            int(data["pgid"]),
            float(data["create_time"]),
            tuple(str(a) for a in data["cmdline"]),
            str(data.get("instance") or ""),
        )
    except (OSError, IndexError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    # 0, 1 and negatives are no child of ours (and pgid 0 would mean n3d's own group).
    return record if record.pid > 1 and record.pgid > 1 else None


def remove_pid_file(path: Path) -> None:
    """Remove ``ollama.pid`` if it is there; never raises (an error is logged)."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.error("pid_file.remove_failed", path=str(path), error=exc.strerror or str(exc))


def looks_like_ollama(cmdline: tuple[str, ...] | list[str], recorded: tuple[str, ...] = ()) -> bool:
    """Whether a command line is the recorded one or names Ollama (or the simulator)."""
    if recorded and tuple(cmdline) == recorded:
        return True
    return any(
        word in os.path.basename(arg) or word in arg for arg in cmdline for word in _OLLAMA_WORDS
    )


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
