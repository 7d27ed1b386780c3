"""Where n3d's service files go, and installing or removing them.

The files themselves are rendered by :mod:`n3d.service.render`. Installing never
overwrites a file whose content differs unless forced, and removing touches only
files that carry :data:`~n3d.service.render.MARKER` (files n3d wrote). Everything
raises :class:`ServiceError` with a message meant for the user.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from n3d import paths
from n3d.atomic import write_atomically
from n3d.errors import ServiceError
from n3d.service.render import (
    LABEL,
    MARKER,
    InstallOutcome,
    Platform,
    ServiceFile,
    render,
)

__all__ = [
    "agent_path",
    "enabled_links",
    "home_dir",
    "install",
    "installed_paths",
    "service_files",
    "uninstall",
    "unit_dir",
]


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
    drain_s: float = 0.0,
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
            drain_s=drain_s,
            config=config,
            home=home_dir(env),
        )
        return [ServiceFile(agent_path(env), plist)]
    names = ["n3d.service", "n3d.socket"] if socket else ["n3d.service"]
    return [
        ServiceFile(
            unit_dir(env) / name,
            render(name, n3d=n3d, stop_timeout_s=stop_timeout_s, drain_s=drain_s, config=config),
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
    links = [
        base / "default.target.wants" / "n3d.service",
        base / "sockets.target.wants" / "n3d.socket",
    ]
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
