"""Render n3d's systemd user unit and launchd agent, and install or remove them.

The templates are package data (``n3d/service/templates/``; the repo's
``systemd/`` and ``launchd/`` hold identical copies). Rendering fills their
``@NAME@`` placeholders:

    @N3D@             absolute path of the n3d executable (quoted for the format)
    @N3D_CONFIG@      config file to pin with N3D_CONFIG; the whole line is left
                      out when there is none (n3d then reads its default path)
    @STOP_TIMEOUT_S@  [server].stop_timeout, for the comment that explains
    @TIMEOUT_STOP_S@  how long the service manager waits from SIGTERM to SIGKILL
    @LOG_DIR@         launchd only: ~/Library/Logs/n3, absolute

Installing never overwrites a file whose content differs unless forced, and
removing touches only files that carry :data:`MARKER` (files n3d wrote).
Everything raises :class:`ServiceError` with a message meant for the user.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape as xml_escape

from n3d import paths
from n3d.atomic import write_atomically
from n3d.errors import ServiceError

__all__ = [
    "LABEL",
    "MARKER",
    "TEMPLATES",
    "InstallOutcome",
    "Platform",
    "ServiceFile",
    "agent_path",
    "current_platform",
    "enabled_links",
    "home_dir",
    "install",
    "installed_paths",
    "launchd_log_dir",
    "render",
    "service_files",
    "template_text",
    "timeout_stop_s",
    "uninstall",
    "unit_dir",
]

Platform = Literal["linux", "macos"]
LABEL = "dev.namel3ss.n3d"
# Every template says this in its header; it is how uninstall knows a file is ours.
MARKER = "Written by `n3d service install`"
TEMPLATES = ("n3d.service", "n3d.socket", f"{LABEL}.plist")

# n3d's own stop takes at most stop_timeout + 5 s (daemon._SHUTDOWN_SLACK_S) plus
# the client drain; 20 s on top keeps the service manager's SIGKILL clear of it.
_STOP_MARGIN_S = 20
_MIN_TIMEOUT_STOP_S = 30
_PLACEHOLDER = re.compile(r"@[A-Z0-9_]+@")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ServiceFile:
    """One rendered file and where it belongs."""

    path: Path
    text: str


InstallOutcome = Literal["written", "replaced", "unchanged"]


def current_platform() -> Platform:
    """``linux`` or ``macos`` for this machine; ServiceError on anything else."""
    if sys.platform == "darwin":
        return "macos"
    if sys.platform.startswith("linux"):
        return "linux"
    raise ServiceError(
        f"n3d service knows systemd (Linux) and launchd (macOS), not {sys.platform!r}; "
        "choose one with --platform linux|macos"
    )


def template_text(name: str) -> str:
    """The raw template ``name`` (one of :data:`TEMPLATES`) from the package data."""
    if name not in TEMPLATES:
        raise ServiceError(f"no service template named {name!r}")
    return resources.files("n3d").joinpath("service", "templates", name).read_text("utf-8")


def timeout_stop_s(stop_timeout_s: float) -> int:
    """Seconds the service manager should wait from SIGTERM to SIGKILL (>= 30)."""
    return max(_MIN_TIMEOUT_STOP_S, math.ceil(stop_timeout_s) + _STOP_MARGIN_S)


def _safe(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ServiceError(f"{what} contains a control character: {value!r}")
    return value


def _systemd_quoted(value: str) -> str:
    """``value`` for use inside double quotes in a unit file (specifiers escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _systemd_word(value: str) -> str:
    """The ExecStart executable: `%` and `\\` escaped, quoted when it has spaces or quotes.

    `$` stays as is: systemd substitutes variables in the arguments, not in the
    executable's path (checked with systemd-analyze verify).
    """
    if re.search(r"[\s\"']", value):
        return '"' + _systemd_quoted(value) + '"'
    return value.replace("\\", "\\\\").replace("%", "%%")


def _fill(template: str, values: Mapping[str, str | None]) -> str:
    """Replace each @NAME@; a line whose placeholder value is None is left out."""
    lines = []
    for line in template.splitlines(keepends=True):
        names = {m.group(0)[1:-1] for m in _PLACEHOLDER.finditer(line)}
        if any(name in values and values[name] is None for name in names):
            continue
        for name in names & values.keys():
            line = line.replace(f"@{name}@", values[name] or "")
        lines.append(line)
    text = "".join(lines)
    left = _PLACEHOLDER.search(text)
    if left:
        raise ServiceError(f"template placeholder {left.group(0)} has no value")
    return text


def render(
    name: str,
    *,
    n3d: Path,
    stop_timeout_s: float,
    config: Path | None = None,
    home: Path | None = None,
) -> str:
    """Render template ``name`` for this n3d, stop timeout, config pin and home.

    ``home`` is needed for the launchd log paths; ``config`` None leaves the
    N3D_CONFIG line out.
    """
    if not n3d.is_absolute() or (config is not None and not config.is_absolute()):
        raise ServiceError("service files need absolute paths")
    exe = _safe(str(n3d), "the n3d path")
    cfg = None if config is None else _safe(str(config), "the config path")
    values: dict[str, str | None] = {
        "STOP_TIMEOUT_S": f"{stop_timeout_s:g}",
        "TIMEOUT_STOP_S": str(timeout_stop_s(stop_timeout_s)),
    }
    if name.endswith(".plist"):
        log_dir = _safe(str(launchd_log_dir(home or Path.home())), "the home directory")
        values |= {
            "N3D": xml_escape(exe),
            "N3D_CONFIG": None if cfg is None else xml_escape(cfg),
            "LOG_DIR": xml_escape(log_dir),
        }
    else:
        values |= {
            "N3D": _systemd_word(exe),
            "N3D_CONFIG": None if cfg is None else _systemd_quoted(cfg),
        }
    return _fill(template_text(name), values)


def launchd_log_dir(home: Path) -> Path:
    """Where the launchd agent's stdout and stderr go: ~/Library/Logs/n3."""
    return home / "Library" / "Logs" / "n3"


def home_dir(env: Mapping[str, str]) -> Path:
    """$HOME from ``env``, else the account's home directory (:mod:`n3d.paths`)."""
    return Path(paths.home_dir(env))


def unit_dir(env: Mapping[str, str]) -> Path:
    """systemd's per-user unit directory (:func:`n3d.paths.unit_dir`)."""
    return Path(paths.unit_dir(env))


def agent_path(env: Mapping[str, str]) -> Path:
    """~/Library/LaunchAgents/dev.namel3ss.n3d.plist: the file name is the Label."""
    return home_dir(env) / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def service_files(
    platform: Platform,
    *,
    n3d: Path,
    stop_timeout_s: float,
    env: Mapping[str, str],
    config: Path | None = None,
    socket: bool = False,
) -> list[ServiceFile]:
    """The rendered file(s) for ``platform`` at their install paths.

    Linux: ``n3d.service``, plus ``n3d.socket`` when ``socket``. macOS: the agent.
    """
    if platform == "macos":
        plist = render(
            f"{LABEL}.plist",
            n3d=n3d,
            stop_timeout_s=stop_timeout_s,
            config=config,
            home=home_dir(env),
        )
        return [ServiceFile(agent_path(env), plist)]
    names = ["n3d.service", "n3d.socket"] if socket else ["n3d.service"]
    return [
        ServiceFile(
            unit_dir(env) / name,
            render(name, n3d=n3d, stop_timeout_s=stop_timeout_s, config=config),
        )
        for name in names
    ]


def installed_paths(platform: Platform, env: Mapping[str, str]) -> list[Path]:
    """Every path ``install`` may write for ``platform``."""
    if platform == "macos":
        return [agent_path(env)]
    return [unit_dir(env) / "n3d.service", unit_dir(env) / "n3d.socket"]


def enabled_links(env: Mapping[str, str]) -> list[Path]:
    """The symlinks `systemctl --user enable` made for n3d's units, if any."""
    base = unit_dir(env)
    links = [base / "default.target.wants" / "n3d.service",
             base / "sockets.target.wants" / "n3d.socket"]
    return [link for link in links if os.path.lexists(link)]


def _read(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"cannot read {path}: {exc}") from exc


def install(files: Sequence[ServiceFile], *, force: bool = False) -> list[InstallOutcome]:
    """Write ``files``; all of them or none when one differs and ``force`` is off.

    Each outcome is ``written`` (new), ``replaced`` (differed; ``force``) or
    ``unchanged`` (already identical, not touched). Writes are atomic (a temporary
    file renamed over the target) with mode 0644, as systemd and launchd expect.
    """
    current = [_read(f.path) for f in files]
    differing = [
        f.path for f, old in zip(files, current, strict=True) if old is not None and old != f.text
    ]
    if differing and not force:
        raise ServiceError(
            f"{differing[0]} exists and differs from what n3d would write; not "
            "overwriting it. Compare with `n3d service print`, then use --force to replace it."
        )
    outcomes: list[InstallOutcome] = []
    for f, old in zip(files, current, strict=True):
        if old == f.text:
            outcomes.append("unchanged")
            continue
        _write_atomic(f.path, f.text)
        outcomes.append("written" if old is None else "replaced")
    return outcomes


def _write_atomic(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text, mode=0o644)
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror or exc}") from exc


def uninstall(paths: Sequence[Path]) -> list[Path]:
    """Remove those of ``paths`` that exist and were written by n3d; return them.

    A file without :data:`MARKER` is someone else's: ServiceError, nothing removed.
    """
    present = [(p, text) for p in paths if (text := _read(p)) is not None]
    foreign = [p for p, text in present if MARKER not in text]
    if foreign:
        raise ServiceError(f"{foreign[0]} was not written by n3d; not removing it")
    for path, _ in present:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ServiceError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    return [p for p, _ in present]
