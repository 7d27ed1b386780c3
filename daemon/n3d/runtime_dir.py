"""n3d's files in its runtime dir while it runs, and putting them back when they vanish.

``n3d.lock`` is held with ``flock`` for the daemon's whole life (one n3d per
runtime dir) and ``n3d.pid`` names it. A ``/tmp`` cleaner, or logind at logout,
may remove the whole runtime dir while n3d runs: the lock then guards nothing (a
second n3d would create and lock a new file), ``n3d.pid`` is gone, and so is the
control socket when it lived there, so clients of the default socket cannot
reach n3d. :func:`keep_runtime_dir` looks every few seconds (a few ``lstat``
calls) and puts back what is missing:

1. the directory, created and checked as at start-up
   (:func:`n3d.paths.ensure_private_dir`), then ``n3d.lock`` (locked again) and
   ``n3d.pid``: ``runtime_dir.restored`` says which;
2. the listening socket: a fresh one at the path, while the connections already
   open keep working (``rpc.socket_restored``). A systemd-activated socket is
   systemd's to make: its removal is logged once (``rpc.socket_removed``).

If another n3d holds the new lock by then, the runtime dir is its own: this one
says so once (``runtime_dir.taken``) and leaves the directory and the socket
path alone. Each failure is logged once, not every few seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskStatus

from n3d.errors import AlreadyRunning, PathError
from n3d.paths import ensure_private_dir

__all__ = [
    "CHECK_INTERVAL_S",
    "ListeningSocket",
    "RuntimeFiles",
    "acquire_lock",
    "keep_runtime_dir",
]

log = structlog.get_logger(__name__)

CHECK_INTERVAL_S = 5.0  # a client of a removed socket waits at most this long, plus its retry


class ListeningSocket(Protocol):
    """What :func:`keep_runtime_dir` needs of the RPC server."""

    @property
    def activated(self) -> bool:
        """The socket was inherited from systemd: its file cannot be made again here."""

    def socket_lost(self) -> bool:
        """Its file was removed (never while shutting down)."""

    def rebind(self) -> None:
        """A fresh socket at the path; raises AlreadyRunning or PathError."""


def acquire_lock(directory: Path, socket_path: Path) -> int:
    """Take the exclusive lock ``directory/n3d.lock``; returns its fd (keep it open).

    The lock dies with the process, so a SIGKILLed n3d never blocks the next one.
    Raises :class:`AlreadyRunning` naming the holder's pid and socket.
    """
    path = directory / "n3d.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").splitlines()
        os.close(fd)
        pid = holder[0] if holder else "?"
        sock = holder[1] if len(holder) > 1 else str(socket_path)
        raise AlreadyRunning(f"n3d is already running (pid {pid}, socket {sock})") from None
    # Only the holder writes, and only after locking: the content is diagnostics.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n{socket_path}\n".encode(), 0)
    return fd


class RuntimeFiles:
    """``n3d.lock`` (held) and ``n3d.pid`` in ``directory``, which already exists."""

    def __init__(self, directory: Path, socket_path: Path) -> None:
        self.directory = directory
        self.socket_path = socket_path
        self.pid_path = directory / "n3d.pid"
        self._lock_fd: int | None = None

    def claim(self) -> None:
        """Lock first (raises AlreadyRunning), then write the pid file."""
        self._lock_fd = acquire_lock(self.directory, self.socket_path)
        try:
            self._write_pid()
        except OSError:
            self.release()
            raise

    def release(self) -> None:
        """Remove the pid file (it may be gone already: fine) and drop the lock."""
        with contextlib.suppress(OSError):
            self.pid_path.unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def missing(self) -> list[str]:
        """Which of ``n3d.lock`` (our locked file) and ``n3d.pid`` are no longer there."""
        gone = [] if self._holds_lock() else ["n3d.lock"]
        return gone if self.pid_path.exists() else [*gone, "n3d.pid"]

    def restore(self) -> list[str]:
        """Put back what is missing; what that was. Raises PathError (the directory
        cannot be made safe) or AlreadyRunning (another n3d holds the new lock)."""
        restored = [] if os.path.lexists(self.directory) else ["directory"]
        # Only the last component: a missing $XDG_RUNTIME_DIR is logind's to make.
        ensure_private_dir(self.directory, parents=False)
        if not self._holds_lock():
            fd = acquire_lock(self.directory, self.socket_path)
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # the lock on the removed file guarded nothing
            self._lock_fd = fd
            restored.append("n3d.lock")
        if not self.pid_path.exists():
            try:
                self._write_pid()
            except OSError as exc:
                raise PathError(f"cannot write {self.pid_path}: {exc.strerror or exc}") from exc
            restored.append("n3d.pid")
        return restored

    def _holds_lock(self) -> bool:
        """The lock path still names the file we locked."""
        if self._lock_fd is None:
            return False
        try:
            ours, there = os.fstat(self._lock_fd), os.lstat(self.directory / "n3d.lock")
        except OSError:
            return False
        return (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino)

    def _write_pid(self) -> None:
        fd = os.open(self.pid_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")


async def keep_runtime_dir(
    files: RuntimeFiles,
    server: ListeningSocket,
    *,
    interval_s: float = CHECK_INTERVAL_S,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Every ``interval_s``: put back what is missing (module docstring); until cancelled."""
    said: set[str] = set()  # problems logged already: once each, until things are well again
    task_status.started()
    while True:
        await anyio.sleep(interval_s)
        if _keep_files(files, said):
            _keep_socket(files, server, said)


def _keep_files(files: RuntimeFiles, said: set[str]) -> bool:
    """The lock and pid file in place (put back if need be); False: leave the socket be."""
    if not files.missing():
        return True
    directory = str(files.directory)
    try:
        restored = files.restore()
    except AlreadyRunning as exc:
        _once(
            said,
            "runtime_dir.taken",
            path=directory,
            error=str(exc),
            detail="another n3d runs in the runtime dir now; this one keeps its "
            "connections but leaves the directory and the socket path to it",
        )
        return False
    except PathError as exc:
        _once(
            said,
            "runtime_dir.restore_failed",
            path=directory,
            error=str(exc),
            detail="n3d.lock, n3d.pid and the socket cannot be put back; tried again "
            f"every {CHECK_INTERVAL_S:g} s",
        )
        return False
    said.clear()
    log.warning(
        "runtime_dir.restored",
        path=directory,
        restored=restored,
        detail="the runtime dir or its files were removed while n3d ran "
        "(a /tmp cleaner, or logind at logout)",
    )
    return True


def _keep_socket(files: RuntimeFiles, server: ListeningSocket, said: set[str]) -> None:
    if not server.socket_lost():
        return
    path = str(files.socket_path)
    if server.activated:
        _once(
            said,
            "rpc.socket_removed",
            path=path,
            detail="the socket file systemd made was removed: new clients cannot connect "
            "until n3d.socket and n3d are restarted",
        )
        return
    try:
        server.rebind()
    except (AlreadyRunning, PathError) as exc:
        _once(said, "rpc.socket_restore_failed", path=path, error=str(exc))
        return
    said.discard("rpc.socket_restore_failed")
    log.warning(
        "rpc.socket_restored",
        path=path,
        detail="the socket file was removed while n3d ran; a new one listens at the "
        "path and open connections were kept",
    )


def _once(said: set[str], event: str, **fields: str) -> None:
    if event not in said:
        said.add(event)
        log.error(event, **fields)
