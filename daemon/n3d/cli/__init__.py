"""`n3d`: the daemon and its local administration.

    n3d run [--config PATH] [--simulate] [--log-format json|console]
    n3d config init|show [--json]|path
    n3d service print|install|uninstall
    n3d --version

Exit codes: 0 ok; 1 an error n3d explains on stderr (already running, Ollama
missing, a service file it will not overwrite); 2 usage; 78 a bad config file.
Errors are one clear message, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from n3d import __version__
from n3d.errors import ConfigError, N3dError

__all__ = ["EXIT_CONFIG", "build_parser", "main"]

# sysexits.h EX_CONFIG: the systemd unit's RestartPreventExitStatus= names it, so a
# broken config file is reported once instead of being retried until the start limit.
EXIT_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    from n3d.cli.config import add_config_commands
    from n3d.cli.service import add_service_commands

    parser = argparse.ArgumentParser(
        prog="n3d",
        description="n3d, the namel3ss supervisor for Ollama.",
    )
    parser.add_argument("--version", action="version", version=f"n3d {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help="config file (default: $N3D_CONFIG, else the platform's config dir)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run the supervisor in the foreground",
        description="Supervise `ollama serve` in the foreground until SIGTERM or SIGINT.",
    )
    run.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="config file (default: $N3D_CONFIG, else the platform's config dir)",
    )
    run.add_argument(
        "--simulate",
        action="store_true",
        help="supervise the bundled Ollama simulator (`ollama-sim serve`) instead of ollama",
    )
    run.add_argument(
        "--log-format",
        choices=("json", "console"),
        default=None,
        help="force the log format (default: [log].format; auto = console on a TTY, else json)",
    )
    add_config_commands(commands)
    add_service_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from n3d.cli.run import run_command

            return run_command(args)
        if args.command == "config":
            from n3d.cli.config import run_config

            return run_config(args)
        if args.command == "service":
            from n3d.cli.service import run_service

            return run_service(args)
    except ConfigError as exc:
        print(f"n3d: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except N3dError as exc:
        print(f"n3d: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2  # pragma: no cover - parser.error exits


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
