"""Where n3d keeps its files, per platform: the one place this is decided.

- runtime: Linux `$XDG_RUNTIME_DIR/n3/` (an absolute, non-empty value only), else
  `/tmp/n3-$UID/`; macOS `$TMPDIR/n3/`
- socket:  `N3D_SOCKET`, else the configured `[socket].path`, else
  `<runtime dir>/n3d.sock` (`~` expanded in the first two)
- config:  `N3D_CONFIG`, else Linux `$XDG_CONFIG_HOME/n3/n3d.toml`
  (`~/.config/n3/n3d.toml`), macOS `~/Library/Application Support/n3/n3d.toml`
- state:   Linux `$XDG_STATE_HOME/n3/` (`~/.local/state/n3/`);
  macOS `~/Library/Application Support/n3/`
- systemd user units: `$XDG_CONFIG_HOME/systemd/user/`

XDG variables that are empty or relative are ignored, as the XDG spec requires.
Every function takes the environment to read (None: ``os.environ``) and returns a
plain string: this module imports nothing but `os` and `sys`, because `n3ctl`
needs the socket path on every invocation and must start as fast as the
interpreter allows (`pathlib` alone costs ~3 ms there). Callers that want a
`Path` wrap the string.

Directories n3d keeps private are created 0700 and verified before use by
:func:`ensure_private_dir` (the check itself is :func:`n3d.trust.private_dir_problem`,
which the clients apply too). The `/tmp/n3-$UID` fallback matters most: anyone
can create that name first.

Clients do not read the config file on their fast path: they try `N3D_SOCKET`
or the default socket, and only when no socket file is there ask
:func:`configured_socket` whether the config moved it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "APP",
    "config_dir",
    "config_file",
    "configured_socket",
    "ensure_private_dir",
    "home_dir",
    "is_macos",
    "runtime_dir",
    "socket_path",
    "state_dir",
    "unit_dir",
    "xdg_dir",
]

APP = "n3"


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def is_macos() -> bool:
    return sys.platform == "darwin"


def xdg_dir(env: Mapping[str, str] | None, name: str) -> str | None:
    """An XDG base directory variable, or None when empty or relative (the spec says ignore)."""
    value = _env(env).get(name, "")
    if value and os.path.isabs(value):
        return value
    return None


def home_dir(env: Mapping[str, str] | None = None) -> str:
    """$HOME from ``env``, else the account's home directory."""
    return _env(env).get("HOME") or os.path.expanduser("~")


def runtime_dir(env: Mapping[str, str] | None = None) -> str:
    """The runtime directory (not created; see :func:`ensure_private_dir`)."""
    e = _env(env)
    if is_macos():
        return os.path.join(e.get("TMPDIR") or "/tmp", APP)
    xdg = xdg_dir(e, "XDG_RUNTIME_DIR")
    if xdg is not None:
        return os.path.join(xdg, APP)
    return f"/tmp/{APP}-{os.geteuid()}"


def socket_path(configured: str = "", env: Mapping[str, str] | None = None) -> str:
    """`N3D_SOCKET`, else the configured `[socket].path`, else `<runtime dir>/n3d.sock`."""
    e = _env(env)
    explicit = e.get("N3D_SOCKET")
    if explicit:
        return os.path.expanduser(explicit)
    if configured:
        return os.path.expanduser(configured)
    return os.path.join(runtime_dir(e), "n3d.sock")


def config_dir(env: Mapping[str, str] | None = None) -> str:
    e = _env(env)
    if is_macos():
        return os.path.join(home_dir(e), "Library", "Application Support", APP)
    base = xdg_dir(e, "XDG_CONFIG_HOME") or os.path.join(home_dir(e), ".config")
    return os.path.join(base, APP)


def config_file(env: Mapping[str, str] | None = None) -> str:
    """`N3D_CONFIG` if set, else `n3d.toml` in the platform's config directory."""
    e = _env(env)
    explicit = e.get("N3D_CONFIG")
    if explicit:
        return os.path.expanduser(explicit)
    return os.path.join(config_dir(e), "n3d.toml")


def state_dir(env: Mapping[str, str] | None = None) -> str:
    """Where run-time changes (the warm list) are kept across restarts."""
    e = _env(env)
    if is_macos():
        return os.path.join(home_dir(e), "Library", "Application Support", APP)
    base = xdg_dir(e, "XDG_STATE_HOME") or os.path.join(home_dir(e), ".local", "state")
    return os.path.join(base, APP)


def unit_dir(env: Mapping[str, str] | None = None) -> str:
    """systemd's per-user unit directory: `$XDG_CONFIG_HOME/systemd/user`."""
    e = _env(env)
    base = xdg_dir(e, "XDG_CONFIG_HOME") or os.path.join(home_dir(e), ".config")
    return os.path.join(base, "systemd", "user")


def configured_socket(env: Mapping[str, str] | None = None) -> str:
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


def ensure_private_dir(path: str | os.PathLike[str], *, parents: bool = True) -> Path:
    """Create `path` (and its parents, unless told not to) 0700 if missing, then verify it.

    Safe means what :func:`n3d.trust.private_dir_problem` checks (the clients
    apply the same check before they connect): a directory that is not a symlink,
    owned by the effective uid, with no permission bits for group or others.
    Raises :class:`~n3d.errors.PathError` saying what is wrong and what to do, and
    never changes an existing directory's owner or mode (a directory with loose
    modes may be someone else's trap). Returns the directory as a `Path`.
    """
    # Only the daemon creates directories: these stay off n3ctl's start-up.
    from pathlib import Path

    from n3d.errors import PathError
    from n3d.trust import private_dir_problem

    target = Path(path)
    try:
        if parents:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PathError(f"cannot create directory {target}: {exc.strerror or exc}") from exc
    try:
        problem = private_dir_problem(str(target))
    except OSError as exc:
        raise PathError(f"cannot inspect directory {target}: {exc.strerror or exc}") from exc
    if problem is not None:
        raise PathError(problem)
    return target
