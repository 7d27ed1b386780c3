"""Where n3d keeps its runtime, config and state files, per platform.

- runtime: Linux `$XDG_RUNTIME_DIR/n3/`, else `/tmp/n3-$UID/`; macOS `$TMPDIR/n3/`
- config:  Linux `$XDG_CONFIG_HOME/n3/` (`~/.config/n3/`);
           macOS `~/Library/Application Support/n3/`
- state:   Linux `$XDG_STATE_HOME/n3/` (`~/.local/state/n3/`);
           macOS `~/Library/Application Support/n3/`

XDG variables that are empty or relative are ignored, as the XDG spec requires.
Directories are created 0700 and then verified before use: a real directory (not
a symlink), owned by the effective uid, with no group or other permission bits.
The `/tmp/n3-$UID` fallback matters most: anyone can create that name first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from n3d import locations
from n3d.errors import PathError
from n3d.locations import APP
from n3d.trust import private_dir_problem

__all__ = [
    "APP",
    "config_dir",
    "config_file",
    "ensure_private_dir",
    "runtime_dir",
    "socket_path",
    "state_dir",
]


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _xdg(env: Mapping[str, str], name: str) -> Path | None:
    value = locations.xdg_dir(env, name)
    return Path(value) if value is not None else None


def _is_macos() -> bool:
    return locations.is_macos()


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """The runtime directory path (not created; see :func:`ensure_private_dir`)."""
    return Path(locations.runtime_dir(_env(env)))


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    return Path(locations.config_dir(_env(env)))


def config_file(env: Mapping[str, str] | None = None) -> Path:
    """`N3D_CONFIG` if set, else `n3d.toml` in the config directory."""
    return Path(locations.config_file(_env(env)))


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    e = _env(env)
    if _is_macos():
        return _home(e) / "Library" / "Application Support" / APP
    return (_xdg(e, "XDG_STATE_HOME") or _home(e) / ".local" / "state") / APP


def socket_path(configured: str = "", env: Mapping[str, str] | None = None) -> Path:
    """`N3D_SOCKET`, else the configured `[socket].path`, else `<runtime dir>/n3d.sock`."""
    return Path(locations.socket_path(configured, _env(env)))


def ensure_private_dir(path: Path, *, parents: bool = True) -> Path:
    """Create `path` (and its parents, unless told not to) 0700 if missing, then verify it.

    Safe means what :func:`n3d.trust.private_dir_problem` checks (the clients
    apply the same check before they connect): a directory that is not a symlink,
    owned by the effective uid, with no permission bits for group or others.
    Raises :class:`PathError` saying what is wrong and what to do, and never
    changes an existing directory's owner or mode (a directory with loose modes
    may be someone else's trap).
    """
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PathError(f"cannot create directory {path}: {exc.strerror or exc}") from exc
    try:
        problem = private_dir_problem(str(path))
    except OSError as exc:
        raise PathError(f"cannot inspect directory {path}: {exc.strerror or exc}") from exc
    if problem is not None:
        raise PathError(problem)
    return path
