"""Where the runtime directory and the control socket are, as plain strings.

The one place this is decided; :mod:`n3d.paths` wraps these in `Path` objects for
the daemon. It imports nothing but `os` and `sys`, because `n3ctl` needs the
socket path on every invocation and must start as fast as the interpreter allows
(`pathlib` alone costs ~3 ms there).

- runtime dir: Linux `$XDG_RUNTIME_DIR/n3` (an absolute, non-empty value only),
  else `/tmp/n3-$UID`; macOS `$TMPDIR/n3`.
- socket: `N3D_SOCKET`, else the configured `[socket].path`, else
  `<runtime dir>/n3d.sock` (`~` expanded in the first two).
- config file: `N3D_CONFIG`, else Linux `$XDG_CONFIG_HOME/n3/n3d.toml`
  (`~/.config/n3/n3d.toml`), macOS `~/Library/Application Support/n3/n3d.toml`.

Clients do not read the config file on their fast path: they try
`N3D_SOCKET` or the default socket, and only when no socket file is there ask
:func:`configured_socket` whether the config moved it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "APP",
    "config_dir",
    "config_file",
    "configured_socket",
    "is_macos",
    "runtime_dir",
    "socket_path",
    "xdg_dir",
]

APP = "n3"


def is_macos() -> bool:
    return sys.platform == "darwin"


def xdg_dir(env: Mapping[str, str], name: str) -> str | None:
    """An XDG base directory variable, or None when empty or relative (the spec says ignore)."""
    value = env.get(name, "")
    if value and os.path.isabs(value):
        return value
    return None


def runtime_dir(env: Mapping[str, str]) -> str:
    if is_macos():
        return os.path.join(env.get("TMPDIR") or "/tmp", APP)
    xdg = xdg_dir(env, "XDG_RUNTIME_DIR")
    if xdg is not None:
        return os.path.join(xdg, APP)
    return f"/tmp/{APP}-{os.geteuid()}"


def socket_path(configured: str, env: Mapping[str, str]) -> str:
    explicit = env.get("N3D_SOCKET")
    if explicit:
        return os.path.expanduser(explicit)
    if configured:
        return os.path.expanduser(configured)
    return os.path.join(runtime_dir(env), "n3d.sock")


def config_dir(env: Mapping[str, str]) -> str:
    home = env.get("HOME") or os.path.expanduser("~")
    if is_macos():
        return os.path.join(home, "Library", "Application Support", APP)
    return os.path.join(xdg_dir(env, "XDG_CONFIG_HOME") or os.path.join(home, ".config"), APP)


def config_file(env: Mapping[str, str]) -> str:
    """`N3D_CONFIG` if set, else `n3d.toml` in the platform's config directory."""
    explicit = env.get("N3D_CONFIG")
    if explicit:
        return os.path.expanduser(explicit)
    return os.path.join(config_dir(env), "n3d.toml")


def configured_socket(env: Mapping[str, str]) -> str:
    """The config file's `[socket].path` (`~` expanded), or "" when unset or unreadable.

    For clients whose default socket is missing: n3d may have been told to listen
    elsewhere. A broken config file is n3d's to report, not the client's.
    """
    try:
        with open(config_file(env), "rb") as file:
            import tomllib  # only here: n3ctl's fast path never reads the config

            document = tomllib.load(file)
    except (OSError, ValueError):  # tomllib.TOMLDecodeError is a ValueError
        return ""
    section = document.get("socket")
    configured = section.get("path") if isinstance(section, dict) else None
    return os.path.expanduser(configured) if isinstance(configured, str) and configured else ""
