"""`ollama.pid`, and what to do with a child a killed n3d left behind.

While n3d owns a server it keeps ``ollama.pid`` in the runtime dir: the pid on the
first line (for humans and tools), then one JSON object with the pid, its process
group, its create time and its command line. If n3d was SIGKILLed the file stays.

The next n3d reads it and looks for the previous child. A process counts as that
child only if **all** hold: the pid exists, its create time equals the recorded one
(so a pid reused by an unrelated process never matches), and its command line is
the recorded one or looks like Ollama. Anything else is left alone.

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
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import anyio
import psutil  # type: ignore[import-untyped]  # no stubs in the dev deps (yet)
import structlog

from n3d.errors import PathError
from n3d.paths import ensure_private_dir
from n3d.supervisor.process import OllamaProcess, group_members, kill_group

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
    """What ``ollama.pid`` says about the child a previous n3d started."""

    pid: int
    pgid: int
    create_time: float
    cmdline: tuple[str, ...]

    @classmethod
    def of(cls, child: OllamaProcess) -> PidRecord:
        return cls(child.pid, child.pgid, child.create_time, child.command)


def _write(path: Path, record: PidRecord) -> None:
    data = {
        "pid": record.pid,
        "pgid": record.pgid,
        "create_time": record.create_time,
        "cmdline": list(record.cmdline),
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


def _matches(proc: psutil.Process, record: PidRecord, *, leader: bool) -> bool:
    try:
        created = proc.create_time()
        cmdline = proc.cmdline()
    except psutil.Error:
        return False
    if leader and abs(created - record.create_time) > _CREATE_TIME_TOLERANCE_S:
        return False
    if not leader and created + _CREATE_TIME_TOLERANCE_S < record.create_time:
        return False  # older than the old serve: cannot be one of its runners
    return looks_like_ollama(cmdline, record.cmdline)


def find_orphans(record: PidRecord) -> tuple[psutil.Process | None, list[psutil.Process]]:
    """The old serve (if it is still the same process) and the members of its group.

    Group members count only if they are no older than serve and look like Ollama:
    once the whole group has died its id can be reused by an unrelated session.
    """
    serve: psutil.Process | None = None
    with suppress(psutil.Error):
        candidate = psutil.Process(record.pid)
        if _matches(candidate, record, leader=True):
            serve = candidate
    members = [
        p
        for p in group_members(record.pgid)
        if p.pid != record.pid and _matches(p, record, leader=False)
    ]
    return serve, members


@dataclass(frozen=True, slots=True)
class OrphanOutcome:
    """``action``: "none" (no file), "stale" (nothing of ours left), "stopped"."""

    action: str
    pid: int | None = None
    killed: int = 0


async def stop_orphans(path: Path, *, stop_timeout_s: float) -> OrphanOutcome:
    """Find the previous child from ``path`` and stop it and its group (bounded).

    SIGTERM to serve, up to ``stop_timeout_s`` for it to exit, then SIGKILL to the
    group when serve was verified (its group id cannot have been reused while it
    lives) or to each verified member otherwise. Removes the file afterwards.
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
    if serve is not None:
        with suppress(psutil.Error):
            serve.send_signal(signal.SIGTERM)
        with suppress(psutil.Error):
            await anyio.to_thread.run_sync(_wait_gone, serve, stop_timeout_s)
        await kill_group(record.pgid)
    for proc in members:
        with suppress(psutil.Error):
            proc.kill()
    remove_pid_file(path)
    log.warning("orphan.stopped", pid=record.pid, processes=len(members) + (serve is not None))
    return OrphanOutcome("stopped", record.pid, len(members) + (serve is not None))


def _wait_gone(proc: psutil.Process, timeout_s: float) -> None:
    with suppress(psutil.TimeoutExpired):
        proc.wait(timeout_s)
