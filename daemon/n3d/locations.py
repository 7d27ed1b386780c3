"""Where the runtime directory and the control socket are, as plain strings.

The one place this is decided; :mod:`n3d.paths` wraps these in `Path` objects for
the daemon. It imports nothing but `os` and `sys`, because `n3ctl` needs the
socket path on every invocation and must start as fast as the interpreter allows
(`pathlib` alone costs ~3 ms there).

- runtime dir: Linux `$XDG_RUNTIME_DIR/n3` (an absolute, non-empty value only),
  else `/tmp/n3-$UID`; macOS `$TMPDIR/n3`.
- socket: `N3D_SOCKET`, else the configured `[socket].path`, else
  `<runtime dir>/n3d.sock` (`~` expanded in the first two).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["APP", "is_macos", "runtime_dir", "socket_path", "xdg_dir"]

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
