"""`n3ctl`: the thin client of a running n3d, over its Unix-socket JSON-RPC.

    n3ctl [--socket PATH] [--json] [--timeout S] COMMAND [ARGS]

Commands: status, health [--force], models [--loaded] [--refresh], pull MODEL,
rm MODEL, ensure MODEL [--pull], validate MODEL, warm [list|add MODEL
[--keep-alive D]|rm MODEL], start, stop, restart, metrics [--prometheus],
requests [--cancel ID], events [--topic T]..., version. Global options may also follow the command.
With several servers, `--server NAME` picks one for status, health, models, pull, rm,
warm, start, stop and restart.

Exit codes (docs/cli.md): 0 ok; 1 the daemon answered with an error (printed
with its suggestion), or a check failed (health not ok, model invalid or not
available, nothing deleted); 2 usage; 3 `status`: the server is not running;
4 `status`: its state is unknown; 69 (EX_UNAVAILABLE) n3d is not reachable;
130 `pull` interrupted; 141 stdout closed early (a pipe into ``head``).

Only the standard library and n3d's stdlib-only modules are imported here (and in
every module of this package: nothing may import anyio, httpx, structlog or
psutil), so `n3ctl status` costs little more than starting Python. The parts:

- :mod:`~n3d.ctl.parse`      the command line; a fast path without argparse
- :mod:`~n3d.ctl.context`    what a command gets: options, streams, style, clock
- :mod:`~n3d.ctl.commands`   one function per command: call, print, exit code
- :mod:`~n3d.ctl.streams`    `pull` (progress, Ctrl-C) and `events` (follow)
- :mod:`~n3d.ctl.fmt`        sizes, durations, times, colour, escaping (pure)
- :mod:`~n3d.ctl.render`     `status`, `health`, `version`, `events` for humans (pure;
                             ``now`` and ``style`` are arguments)
- :mod:`~n3d.ctl.tables`     `models`, `warm`, `metrics`, `requests` as tables (pure)
- :mod:`~n3d.ctl.progress`   the `pull` progress bar and its plain-lines form

`metrics --prometheus` prints the text the daemon renders (``metrics.prometheus``,
the same as ``GET /metrics`` on the proxy): it is rendered once, in the daemon.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from n3d.client import DaemonUnreachable, RpcError
from n3d.ctl.parse import build_parser, fast_parse
from n3d.errors import render_error

# typing and argparse cost `n3ctl status` milliseconds it does not need: the
# hints need typing only for checking, and the hot forms skip argparse (fast_parse).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

__all__ = ["EXIT_UNAVAILABLE", "build_parser", "main"]

EXIT_UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE
_METHOD_NOT_FOUND = -32601

# Default seconds to wait for an answer, per command; None waits as long as it
# takes (a pull, or following events). `--timeout` overrides; 0 means forever.
_TIMEOUTS: dict[str, float | None] = {
    "health": 15.0,  # a forced probe may take Ollama's health_timeout, and more
    "rm": 30.0,
    "ensure": 30.0,
    "warm": 120.0,  # warm add loads the model
    "start": 90.0,  # waits for the first good health check (start_timeout 60)
    "stop": 30.0,  # SIGTERM, stop_timeout, SIGKILL
    "restart": 120.0,
    "pull": None,
    "events": None,
}


def _unreachable_hint(exc: DaemonUnreachable) -> str:
    """One line: which socket was tried, why it failed, what to do (not yet printable)."""
    path = exc.path
    if exc.reason == "missing":
        return f"n3ctl: no n3d socket at {path}; is n3d running? start it with: n3d run"
    if exc.reason == "refused":
        return (
            f"n3ctl: stale socket at {path} (connection refused): n3d is not running; "
            "start it with: n3d run"
        )
    if exc.reason == "permission":
        return (
            f"n3ctl: permission denied on {path}: it belongs to another user; "
            "choose yours with --socket or N3D_SOCKET"
        )
    if exc.reason == "untrusted":
        return f"n3ctl: refusing the socket at {path}: {exc.detail}"
    if exc.reason == "timeout":
        return f"n3ctl: n3d at {path} did not answer in time ({exc.detail}); try --timeout"
    return f"n3ctl: lost n3d at {path}: {exc.detail}"


def render_rpc_error(exc: RpcError, method: str | None = None) -> str:
    """The seed's layout: message, ``Model:``/``Server:`` lines, blank line, suggestion."""
    data = exc.data if isinstance(exc.data, dict) else {}
    if exc.code == _METHOD_NOT_FOUND and not data.get("suggestion"):
        data = {
            **data,
            "suggestion": f"This n3d does not offer `{method or '?'}`; "
            "it may be older than n3ctl. Compare: n3ctl version",
        }
    from n3d.ctl.fmt import printable  # only on the error path: keep startup lean

    # The daemon's message and data carry Ollama's own words, and whatever answers
    # on the socket may send anything: made printable before a terminal sees them.
    return printable(
        render_error(
            str(exc.message or f"error {exc.code}"),
            model=data.get("model"),
            base_url=data.get("base_url"),
            suggestion=data.get("suggestion"),
        )
    )


def _method_of(args: Any) -> str:
    if args.command == "warm":
        return {"add": "warm.add", "rm": "warm.remove"}.get(args.warm_action or "", "warm.list")
    methods = {
        "models": "models.list",
        "rm": "models.delete",
        "pull": "models.pull",
        "ensure": "models.ensure",
        "validate": "models.validate",
        "start": "server.start",
        "stop": "server.stop",
        "restart": "server.restart",
        "events": "events.subscribe",
    }
    return methods.get(args.command, str(args.command))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one n3ctl command; returns its exit code (never raises SystemExit)."""
    out: TextIO = sys.stdout
    args = fast_parse(sys.argv[1:] if argv is None else argv)
    if args is None:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # usage errors (2), --help and --version (0)
            return exc.code if isinstance(exc.code, int) else 2
    for name, default in (("socket", None), ("json", False), ("timeout", None), ("server", None)):
        # Not parser.set_defaults: it would also reset the actions the subcommands
        # share, and `n3ctl --json status` would lose its --json.
        if not hasattr(args, name):
            setattr(args, name, default)
    from n3d.ctl.commands import COMMANDS
    from n3d.ctl.context import Context
    from n3d.ctl.fmt import Style, color_enabled, printable

    timeout = args.timeout if args.timeout is not None else _TIMEOUTS.get(args.command, 5.0)
    ctx = Context(
        args,
        out,
        sys.stderr,
        Style(not args.json and color_enabled(out)),
        err_tty=sys.stderr.isatty() and os.environ.get("TERM") != "dumb",
        socket=args.socket,
        timeout=timeout or None,
    )
    try:
        code = COMMANDS[args.command](ctx)
        out.flush()
        return code
    except DaemonUnreachable as exc:
        print(printable(_unreachable_hint(exc)), file=sys.stderr)
        return EXIT_UNAVAILABLE
    except RpcError as exc:
        print(render_rpc_error(exc, _method_of(args)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`n3ctl models | head -1`): not an error worth a
        # traceback. Point stdout at /dev/null so the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
