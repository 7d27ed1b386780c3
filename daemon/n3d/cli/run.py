"""`n3d run`: load the config, configure logging, run the daemon, turn its end into an exit code.

Every failure becomes one line on stderr and in the log, and an exit code: 1 for
"already running" and for any other error n3d names; 1 with "internal error" and
the traceback in the log for a bug. (A bad config never gets here: `n3d.cli` exits
78 on it before.)
"""

from __future__ import annotations

import argparse
import sys

import anyio
import structlog

from n3d.config import Settings, load_settings
from n3d.daemon import SIMULATOR, Daemon
from n3d.errors import AlreadyRunning, N3dError, root_cause
from n3d.logs import configure_logging

__all__ = ["run", "run_command"]

log = structlog.get_logger("n3d.daemon")


def run_command(args: argparse.Namespace) -> int:
    """`n3d run [--simulate] [--log-format F]` with the parsed ``args``."""
    settings = load_settings(args.config)
    configure_logging(settings.log.format, settings.log.level, force_format=args.log_format)
    return run(settings, simulate=args.simulate)


def run(settings: Settings, *, simulate: bool) -> int:
    """Supervise until SIGTERM/SIGINT; returns the process exit code.

    ``simulate`` supervises the bundled simulator instead of ``[server].command``.
    """
    command = SIMULATOR if simulate else settings.server.command
    daemon = Daemon(settings, command=command, simulate=simulate)
    try:
        return anyio.run(daemon.run)
    except Exception as exc:  # every failure becomes one line and an exit code
        failure = root_cause(exc)
        if isinstance(failure, AlreadyRunning):
            log.error("n3d.already_running", error=str(failure))
        elif isinstance(failure, N3dError):
            log.error("n3d.failed", error=str(failure))
        else:  # a bug: say so in one line, with the details in the log
            log.error("n3d.crashed", exc_info=failure)
            print(f"n3d: internal error: {failure!r} (details in the log)", file=sys.stderr)
            return 1
        print(f"n3d: {failure}", file=sys.stderr)
        return 1
