"""Why a spawn failed, and whether trying again can help.

The one place where an error from starting the child (``fork``/``exec`` as
:func:`anyio.open_process` reports it) becomes a failed start. Every such error,
whatever its errno, is a :class:`SpawnFailed`; nothing from exec can end n3d.

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
from dataclasses import dataclass

from n3d.errors import N3dError, OllamaError

__all__ = ["SpawnFailed", "SpawnFailure", "classify"]

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
