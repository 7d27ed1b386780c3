"""Starting `ollama serve`: its environment, the spawn, and why a spawn failed.

* :func:`open_ollama` spawns the child in a new session and guarantees its stop
  (:meth:`~n3d.supervisor.process.OllamaProcess.stop`) when the block is left.
* stdout and stderr are read continuously and re-emitted as log events with
  ``logger: "ollama"`` (rate-limited, :mod:`n3d.supervisor.output`); a pipe never
  fills, whatever the child prints.
* Every spawn carries a fresh random marker in the child's environment,
  ``N3D_INSTANCE``, which Ollama's runners inherit: it is how a later n3d proves
  that a process was started by this serve (:mod:`n3d.supervisor.orphans`).
* :func:`child_environment` removes n3d's own service variables and pins
  ``OLLAMA_HOST`` to the base URL.

This is the one place where an error from starting the child (``fork``/``exec``
as :func:`anyio.open_process` reports it) becomes a failed start. Every such
error, whatever its errno, is a :class:`SpawnFailed`; nothing from exec can end
n3d.

Retrying helps when the cause passes by itself: the executable is being
rewritten (``ETXTBSY``: an upgrade in progress), or the machine is short of
processes, memory or file descriptors (``EAGAIN``, ``ENOMEM``, ``EMFILE``,
``ENFILE``...). Those back off like any failed start. Retrying cannot help when
the command itself is wrong: missing (``ENOENT``), not executable (``EACCES``,
``EPERM``), not a program this machine runs (``ENOEXEC``: another architecture,
or a script without ``#!``), a symlink loop (``ELOOP``), a path through a
non-directory (``ENOTDIR``), too long (``E2BIG``, ``ENAMETOOLONG``), or a NUL
byte (Python's ``ValueError``; the config check refuses that at load already).
Those go ``fatal`` at once, saying what to fix. An errno not named here backs
off: the restart policy bounds it, so a wrong guess costs a few retries, never
a crash loop.
"""

from __future__ import annotations

import errno
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import structlog

from n3d.errors import N3dError, OllamaError
from n3d.supervisor.groups import INSTANCE_VAR
from n3d.supervisor.output import OutputLimiter, drain
from n3d.supervisor.process import OllamaProcess

__all__ = ["SpawnFailed", "SpawnFailure", "child_environment", "classify", "open_ollama"]

# The spawn is one of the child's events: it keeps the logger of the others.
log = structlog.get_logger("n3d.supervisor.process")

# Variables that belong to n3d's own service manager, never to the child: systemd
# would take a READY=1 from ollama as ours, and LISTEN_FDS describes n3d's sockets.
_SCRUBBED_PREFIXES = ("NOTIFY_SOCKET", "WATCHDOG_", "LISTEN_")
_DRAIN_GRACE_S = 1.0  # after the group is gone, how long pipes may stay open

# errno → (what it means for the command, what to do); retrying cannot help.
_PERMANENT: dict[int, tuple[str, str]] = {
    errno.ENOENT: ("not found", "install it"),
    errno.EACCES: ("not executable by n3d's user (its mode, or a noexec mount)", "fix that"),
    errno.EPERM: ("not allowed to run (a security policy or its file capabilities)", "fix that"),
    errno.ENOEXEC: (
        "not a program this machine can run (built for another architecture, "
        "or a script without a #! line)",
        "fix the command",
    ),
    errno.ELOOP: ("a symlink loop in its path", "fix the link"),
    errno.ENOTDIR: ("a part of its path is not a directory", "fix the path"),
    errno.EISDIR: ("a directory, not a program", "fix the command"),
    errno.E2BIG: ("its arguments and environment are too large", "shorten them"),
    errno.ENAMETOOLONG: ("its path is too long", "shorten it"),
    errno.EINVAL: ("not a valid executable (its ELF interpreter is broken)", "fix the command"),
    errno.ELIBBAD: ("not a valid executable (a corrupt shared library)", "reinstall it"),
}
# errno → what is going on; the start is tried again after the backoff.
_PASSING: dict[int, str] = {
    errno.ETXTBSY: "the executable is open for writing (an upgrade in progress?)",
    errno.EAGAIN: "the process limit was reached",
    errno.ENOMEM: "out of memory",
    errno.EMFILE: "n3d ran out of file descriptors",
    errno.ENFILE: "the system ran out of file descriptors",
    errno.EINTR: "interrupted",
    errno.EBUSY: "a resource was busy",
    errno.EIO: "an I/O error",
}


@dataclass(frozen=True, slots=True)
class SpawnFailure:
    """A start that failed before the child ran: what happened, and if retrying helps.

    ``message`` reads ``cannot run PROGRAM: WHY (Text file busy, ETXTBSY)``;
    ``fix`` completes "…, then run: n3ctl start" for a failure that is permanent;
    ``suggestion`` is the seed's longer advice where there is one.
    """

    message: str
    retryable: bool
    errno_name: str | None
    fix: str = ""
    suggestion: str | None = None
    not_installed: bool = False  # the program is not there at all (the seed's 1008 case)


class SpawnFailed(N3dError):
    """Starting the child failed; the lifecycle makes it a failed start (or ``fatal``)."""

    def __init__(self, failure: SpawnFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def classify(exc: BaseException, program: str) -> SpawnFailure:
    """What ``exc``, raised while spawning ``program``, means for the next start."""
    if isinstance(exc, ValueError):  # "embedded null byte": exec never saw it
        return SpawnFailure(
            f"cannot run {program!r}: the command or its environment contains a NUL byte",
            False,
            None,
            "fix [server] command and env",
        )
    code = exc.errno if isinstance(exc, OSError) else None
    name = errno.errorcode.get(code, str(code)) if code is not None else None
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    cause = f"{detail}, {name}" if name else detail
    if code == errno.ENOENT and os.sep in program and os.path.exists(program):
        # exec says ENOENT for the interpreter too: `#!/no/such/sh`, or the ELF
        # loader of a binary built for another system.
        return SpawnFailure(
            f"cannot run {program}: its interpreter (the #! line, or the ELF loader) "
            f"was not found ({cause})",
            False,
            name,
            "fix the command",
        )
    if code == errno.ENOENT:
        # The seed's words: the usual case is Ollama not installed (or not on PATH).
        return SpawnFailure(
            f"Ollama executable not found: {program} ({cause})",
            False,
            name,
            "install it",
            OllamaError.not_installed(program, "").suggestion,
            not_installed=True,
        )
    if code in _PERMANENT:
        what, fix = _PERMANENT[code]
        return SpawnFailure(f"cannot run {program}: {what} ({cause})", False, name, fix)
    what = _PASSING.get(code, "an unexpected error") if code is not None else "an unexpected error"
    return SpawnFailure(f"cannot run {program}: {what} ({cause}); trying again", True, name)


def child_environment(
    base: Mapping[str, str], *, ollama_host: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """The child's environment: ``base`` + ``extra``, n3d's service variables removed.

    ``OLLAMA_HOST`` is always ``ollama_host`` (from the base URL), even if ``extra``
    sets it: n3d probes the base URL, so the child must listen exactly there.
    """
    env = {k: v for k, v in base.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(extra)
    env["OLLAMA_HOST"] = ollama_host
    return env


@asynccontextmanager
async def open_ollama(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    stop_timeout_s: float,
    output: OutputLimiter | None = None,
) -> AsyncIterator[OllamaProcess]:
    """Spawn ``command`` in a new session; on leaving the block, stop it (bounded).

    The child's output is re-emitted through ``output`` (default: a fresh
    :class:`OutputLimiter` with the standard rate). Raises
    :class:`SpawnFailed` when the spawn fails, for any reason.
    """
    instance = secrets.token_hex(16)
    try:
        process = await anyio.open_process(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**env, INSTANCE_VAR: instance},
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
        raise SpawnFailed(classify(exc, command[0] if command else "")) from exc
    child = OllamaProcess(process, command, instance)
    limiter = output if output is not None else OutputLimiter()
    log.info("ollama.spawned", pid=child.pid, command=list(command))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(child.watch_exit)
            stdout, stderr = process.stdout, process.stderr
            assert stdout is not None and stderr is not None
            # Shielded like the exit watcher: the pipes are read until the group is
            # gone (plus a grace), even when the surrounding code is cancelled.
            drains = anyio.CancelScope(shield=True)

            async def drain_all() -> None:
                with drains:
                    async with anyio.create_task_group() as dtg:
                        dtg.start_soon(drain, stdout, "stdout", None, limiter)
                        dtg.start_soon(drain, stderr, "stderr", child.note_stderr, limiter)

            tg.start_soon(drain_all)
            try:
                yield child
            finally:
                with anyio.CancelScope(shield=True):
                    await child.stop(stop_timeout_s)
                    # A process outside the group (it called setsid) may hold the
                    # pipes open forever; don't wait for its EOF beyond a grace.
                    drains.deadline = anyio.current_time() + _DRAIN_GRACE_S
    finally:
        with anyio.CancelScope(shield=True):
            if child.exited.is_set():
                # Also closes the pipes themselves: a process that left the group
                # may still hold their other ends, and asyncio would keep them open.
                await process.aclose()
            else:  # abandoned (unkillable): aclose() would wait for its exit
                for stream in (process.stdout, process.stderr):
                    if stream is not None:
                        await stream.aclose()
