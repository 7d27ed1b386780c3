"""`n3d config init|show|path`: write, inspect and locate the config file.

Data goes to stdout and nothing else does; problems are one line on stderr.
Exit codes: 0 ok; 1 a bad config, or `init` refusing to overwrite a file.

The file read is `--config PATH`, else `$N3D_CONFIG`, else the platform default
(`n3d.paths.config_file`); `config init --path P` writes P instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from n3d import paths
from n3d.config import Settings, default_toml, load_settings
from n3d.errors import ConfigError

__all__ = ["add_config_commands", "run_config"]

_CONFIG_HELP = "config file (default: $N3D_CONFIG, else the platform's config dir)"


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps a top-level `n3d --config P config show` from being reset to None.
    parser.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, metavar="PATH", help=_CONFIG_HELP
    )


def add_config_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `config` with its actions `init`, `show` and `path` on `subparsers`.

    Sets `args.config_command` to the action, plus `args.init_path` for `init` and
    `args.json` for `show`; `args.config` is the usual global `--config PATH`.
    """
    config = subparsers.add_parser(
        "config",
        help="write, show or locate the config file",
        description="Write the default config file, show the effective settings and "
        "where each came from, or print the path of the config file.",
    )
    _add_config_option(config)
    actions = config.add_subparsers(dest="config_command", metavar="ACTION")
    actions.required = True
    init = actions.add_parser(
        "init",
        help="write the default config file (never overwrites one)",
        description="Write every key at its default, with comments. Refuses (exit 1) "
        "when the file already exists.",
    )
    init.add_argument(
        "--path",
        dest="init_path",
        type=Path,
        default=None,
        metavar="P",
        help="write here instead of the config path",
    )
    show = actions.add_parser(
        "show",
        help="print every effective setting and its source",
        description="Print each setting as `section.key = value  # source`, where source "
        "is default, file:PATH, file:PATH (host/port) or env:NAME.",
    )
    show.add_argument("--json", action="store_true", help="one JSON document instead")
    path = actions.add_parser("path", help="print the config file path n3d reads")
    for parser in (init, show, path):
        _add_config_option(parser)
    return config


def run_config(args: argparse.Namespace, *, env: Mapping[str, str] | None = None) -> int:
    """Run the `config` action in `args`; environment from `env` (default os.environ)."""
    e: Mapping[str, str] = os.environ if env is None else env
    configured: Path | None = getattr(args, "config", None)
    target = configured if configured is not None else Path(paths.config_file(e))
    if args.config_command == "path":
        print(target)
        return 0
    if args.config_command == "init":
        return _init(getattr(args, "init_path", None) or target)
    try:
        settings = load_settings(configured, e)
    except ConfigError as exc:
        print(f"n3d: {exc}", file=sys.stderr)
        return 1
    for warning in settings.warnings:
        print(f"n3d: warning: {warning}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(settings.document(), indent=2))
    else:
        print(_as_table(settings, target, settings.socket_path(e)))
    return 0


def _init(target: Path) -> int:
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL makes "refuse to overwrite" atomic; 0600 since [server.env] may hold secrets.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"n3d: {target} already exists; not overwriting it", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"n3d: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(default_toml())
    print(target)
    return 0


def _toml_key(key: str) -> str:
    return tomli_w.dumps({key: 0}).rpartition(" = ")[0]


def _toml_value(value: Any) -> str:
    """One TOML value on one line (tomli-w would split arrays over lines)."""
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).partition(" = ")[2].rstrip("\n")


def _as_table(settings: Settings, target: Path, socket: Path) -> str:
    """`section.key = value  # source` lines, aligned; the whole text parses as TOML."""
    sources = settings.sources
    read = str(settings.file) if settings.file else f"{target} (not found; defaults apply)"
    values = settings.as_dict()
    servers = values.pop("servers", [])
    rows = [
        (f"{section}.{key} = {_toml_value(value)}", sources[f"{section}.{key}"])
        for section, keys in values.items()
        for key, value in keys.items()
    ]
    width = max(len(left) for left, _ in rows)
    lines = [f"# config file: {read}", f"# socket: {socket}"]
    lines += [f"{left:<{width}}  # {source}" for left, source in rows]
    for server in servers:  # after every dotted key, so that the text stays TOML
        lines += ["", f"[[servers]]  # {sources['servers']}; env merged over [server].env"]
        lines += [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in server.items()]
    return "\n".join(lines)
