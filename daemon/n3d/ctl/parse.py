"""n3ctl's command line: the full argparse parser, and a fast path for the hot forms.

Global options (``--socket``, ``--json``, ``--timeout``) are accepted before and
after the command. :func:`fast_parse` handles ``status``, ``health`` and
``models`` in their plain forms without importing argparse at all; everything
else (and every usage error) goes through :func:`build_parser`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from n3d import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["build_parser", "fast_parse"]


def _seconds(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (wait forever) or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; global options are accepted before and after the command."""
    import argparse

    # SUPPRESS: a subcommand's copy of an option must not reset what the main parser set.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--socket",
        metavar="PATH",
        help="n3d's socket (default: $N3D_SOCKET, else the runtime dir's)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON (JSON Lines for pull and events)",
    )
    common.add_argument(
        "--timeout", metavar="S", type=_seconds, help="seconds to wait for the daemon (0: forever)"
    )
    parser = argparse.ArgumentParser(
        prog="n3ctl",
        parents=[common],
        description="Control a running n3d (the namel3ss supervisor for Ollama).",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3/4 status not running/unknown, "
        "69 n3d unreachable. See docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"n3ctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help, description=help)

    def server_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--server", metavar="NAME", default=None, help="this server (default: the first)"
        )
        return parser

    server_option(
        command("status", "the server's state, health, memory and models (exit 3: not running)")
    )
    server_option(command("health", "Ollama's health (exit 1: failing)")).add_argument(
        "--force", action="store_true", help="probe now instead of using the cached answer"
    )
    models = command("models", "installed models (or the loaded ones), every server's")
    models.add_argument("--loaded", action="store_true", help="models loaded in memory")
    models.add_argument("--refresh", action="store_true", help="bypass the daemon's cache")
    models.add_argument("--server", metavar="NAME", default=None, help="this server's only")
    pull = command("pull", "download a model, with progress")
    pull.add_argument("model", metavar="MODEL")
    pull.add_argument(
        "--server", metavar="NAME", default=None, help="into this server's models directory"
    )
    rm = command("rm", "delete a model")
    rm.add_argument("model", metavar="MODEL")
    rm.add_argument("--server", metavar="NAME", default=None, help="from this server's only")
    ensure = command("ensure", "check a model is available (exit 1: it is not)")
    ensure.add_argument("model", metavar="MODEL")
    ensure.add_argument("--pull", action="store_true", help="pull it if it is missing")
    command("validate", "check a model name (exit 1: invalid)").add_argument(
        "model", metavar="MODEL"
    )
    # On `warm` and on each action, SUPPRESS like the global options: an action's
    # copy must not reset `warm --server b list` (main() defaults it to None).
    on_server = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    on_server.add_argument(
        "--server",
        metavar="NAME",
        help="this server's warm list (default: every server's; add: where it is pinned)",
    )
    warm = sub.add_parser(
        "warm",
        parents=[common, on_server],
        help="the models kept loaded: list (default), add, rm",
        description="the models kept loaded: list (default), add, rm",
    )
    actions = warm.add_subparsers(dest="warm_action", metavar="ACTION")
    actions.add_parser("list", parents=[common, on_server], help="the warm list")
    add = actions.add_parser("add", parents=[common, on_server], help="keep a model loaded")
    add.add_argument("model", metavar="MODEL")
    add.add_argument(
        "--keep-alive",
        metavar="D",
        default=None,
        help="keep_alive for its warm-up loads (Go duration or seconds; -1 forever)",
    )
    actions.add_parser(
        "rm", parents=[common, on_server], help="stop keeping a model loaded"
    ).add_argument("model", metavar="MODEL")
    server_option(command("start", "start the Ollama server (clears fatal)"))
    server_option(command("stop", "stop the Ollama server"))
    server_option(command("restart", "restart the Ollama server"))
    command("metrics", "counters, gauges and histograms").add_argument(
        "--prometheus", action="store_true", help="Prometheus text exposition format"
    )
    command("requests", "requests in flight through the proxy, with age and tokens").add_argument(
        "--cancel", metavar="ID", default=None, help="end this request on both sides"
    )
    command("events", "follow events until Ctrl-C").add_argument(
        "--topic",
        action="append",
        metavar="T",
        default=None,
        help="only this topic (repeatable): server.state, health, model.loaded, ...",
    )
    command("version", "n3ctl's version, and n3d's when it answers")
    return parser


# The hot commands and their flags, which _fast_parse understands by itself.
_HOT_FLAGS = {"status": (), "health": ("force",), "models": ("loaded", "refresh")}


def fast_parse(argv: Sequence[str]) -> Any:
    """Parse the plain forms of the hot commands without argparse, else return None.

    Importing argparse and building the full parser is ~3 ms, a sixth of
    `n3ctl status`. Only exact, valid forms are taken here (``[--json]
    [--socket PATH] [--timeout S] status|health [--force]|models [--loaded]
    [--refresh]``, options in any position); anything else, including every
    error and ``--help``, goes to argparse, so messages and exit codes are its.
    """
    values: dict[str, Any] = {"command": None, "json": False, "socket": None, "timeout": None}
    tokens = iter(argv)
    for token in tokens:
        if token == "--json":
            values["json"] = True
        elif token in ("--socket", "--timeout"):
            value = next(tokens, None)
            if not value or value.startswith("-"):
                return None
            if token == "--socket":
                values["socket"] = value
                continue
            try:
                seconds = float(value)
            except ValueError:
                return None
            if not seconds >= 0:  # also refuses nan
                return None
            values["timeout"] = seconds
        elif values["command"] is None and token in _HOT_FLAGS:
            values["command"] = token
            values.update(dict.fromkeys(_HOT_FLAGS[token], False))
        elif (
            values["command"] is not None
            and token[2:] in _HOT_FLAGS[values["command"]]
            and token.startswith("--")
        ):
            values[token[2:]] = True
        else:
            return None
    return SimpleNamespace(**values) if values["command"] is not None else None
