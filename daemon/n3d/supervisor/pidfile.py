"""`ollama.pid`: what n3d records about the child it started, written so nothing can end n3d.

The pid on the first line (for humans and tools), then one JSON object: the pid,
its process group, its create time, its command line and its instance marker
(the random ``N3D_INSTANCE`` value n3d put in that spawn's environment). What a
later n3d does with it is :mod:`n3d.supervisor.orphans`.

Writing and removing the file never raise: the runtime dir is checked as at
start-up before each write, created again if it vanished while n3d ran (a
``/tmp`` cleaner, logind at logout), and anything else is logged; the server
runs on either way. A record naming pid or group 0, 1 or a negative number is
read as no record (``killpg(0)`` would reach n3d's own group).

With several servers each has its own file (:func:`pid_file_name`): the first
server's is ``ollama.pid`` as it always was, another's ``ollama-<name>.pid``;
:func:`pid_files` finds them all, also those of servers since removed from the
config, so a killed n3d's orphans are found whatever the config says now.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from n3d.errors import PathError
from n3d.paths import ensure_private_dir
from n3d.supervisor.process import OllamaProcess

__all__ = [
    "PidRecord",
    "pid_file_name",
    "pid_files",
    "read_pid_file",
    "remove_pid_file",
    "write_pid_file",
]

log = structlog.get_logger("n3d.supervisor.pidfile")


def pid_file_name(server: str, *, first: bool) -> str:
    """The pid file of a server: ``ollama.pid`` for the first (as with one server),
    ``ollama-<name>.pid`` for the others (names are ``[a-z0-9-]+``)."""
    return "ollama.pid" if first else f"ollama-{server}.pid"


def pid_files(directory: Path) -> list[Path]:
    """Every server's pid file in ``directory`` (``ollama.pid``, ``ollama-*.pid``), sorted.

    Never raises: a directory that cannot be listed has none (nothing to act on).
    """
    try:
        found = [p for p in directory.glob("ollama*.pid") if p.is_file()]
    except OSError:
        return []
    return sorted(p for p in found if p.name == "ollama.pid" or p.name.startswith("ollama-"))


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
                "logind at logout): created again; n3d.lock, n3d.pid and the control "
                "socket if it lived there come back within seconds (runtime_dir.restored)",
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
