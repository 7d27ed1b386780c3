"""Render n3d's systemd user unit and launchd agent from their templates.

The templates are package data (``n3d/service/templates/``; the repo's
``systemd/`` and ``launchd/`` hold identical copies). Rendering fills their
``@NAME@`` placeholders:

    @N3D@             absolute path of the n3d executable (quoted for the format)
    @N3D_CONFIG@      config file to pin with N3D_CONFIG; the whole line is left
                      out when there is none (n3d then reads its default path)
    @STOP_TIMEOUT_S@  [server].stop_timeout, for the comment that explains
    @TIMEOUT_STOP_S@  how long the service manager waits from SIGTERM to SIGKILL
    @LOG_DIR@         launchd only: ~/Library/Logs/n3, absolute

Every template says :data:`MARKER` in its header. Errors are :class:`ServiceError`
with a message meant for the user.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape as xml_escape

from n3d.errors import ServiceError

__all__ = [
    "LABEL",
    "MARKER",
    "TEMPLATES",
    "InstallOutcome",
    "Platform",
    "ServiceFile",
    "current_platform",
    "launchd_log_dir",
    "render",
    "template_text",
    "timeout_stop_s",
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


def timeout_stop_s(stop_timeout_s: float, drain_s: float = 0.0) -> int:
    """Seconds the service manager should wait from SIGTERM to SIGKILL (>= 30).

    n3d's own stop drains the proxy first (``drain_s``: `[proxy] drain_timeout` when
    the proxy is on), then stops Ollama within ``stop_timeout_s``; the margin covers
    the socket's drain and the group's verification.
    """
    return max(_MIN_TIMEOUT_STOP_S, math.ceil(stop_timeout_s + drain_s) + _STOP_MARGIN_S)


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


def launchd_log_dir(home: Path) -> Path:
    """Where the launchd agent's stdout and stderr go: ~/Library/Logs/n3."""
    return home / "Library" / "Logs" / "n3"


def render(
    name: str,
    *,
    n3d: Path,
    stop_timeout_s: float,
    drain_s: float = 0.0,
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
        "DRAIN_S": f"{drain_s:g}",
        "TIMEOUT_STOP_S": str(timeout_stop_s(stop_timeout_s, drain_s)),
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
