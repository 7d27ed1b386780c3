"""`n3d service print|install|uninstall`: run n3d under systemd or launchd.

- ``print`` writes the rendered unit (or agent) to stdout and nothing else;
  ``--socket`` prints the optional socket unit instead.
- ``install`` writes it to ``$XDG_CONFIG_HOME/systemd/user/`` or
  ``~/Library/LaunchAgents/`` and prints the exact commands that enable and start
  it. A file that differs is never overwritten without ``--force``; an identical
  one is left alone ("already installed", exit 0).
- ``uninstall`` removes the files n3d wrote (never anyone else's). On Linux it
  first asks for `systemctl --user disable --now` while the units are enabled;
  on macOS it prints the `launchctl bootout` that stops the agent.

``--platform linux|macos`` (default: this machine) renders for the other system,
so the macOS agent can be inspected on Linux. The path of n3d in the file is
this n3d's (``--n3d PATH`` to choose); a ``--config`` given to n3d, or
``$N3D_CONFIG``, is pinned in the file so the service reads the same config.

Exit codes: 0 ok; 1 refused or failed (one message on stderr); 2 usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from n3d.config import load_settings
from n3d.errors import ConfigError, ServiceError
from n3d.service import units as service
from n3d.service.render import LABEL, Platform, ServiceFile, current_platform, launchd_log_dir

__all__ = ["add_service_commands", "run_service"]


def add_service_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `service` with its actions `print`, `install` and `uninstall`.

    Sets `args.service_command`, `args.platform` (None = this machine) and, for
    print/install, `args.n3d` and `args.socket`; install also sets `args.force`.
    """
    parser = subparsers.add_parser(
        "service",
        help="install n3d as a systemd user service or launchd agent",
        description="Render, install or remove the systemd user unit (Linux) or "
        "launchd agent (macOS) that runs `n3d run` at login.",
    )
    actions = parser.add_subparsers(dest="service_command", metavar="ACTION")
    actions.required = True
    show = actions.add_parser("print", help="print the rendered service file")
    install = actions.add_parser(
        "install",
        help="write the service file and print the commands to start it",
        description="Never overwrites a file that differs without --force.",
    )
    install.add_argument("--force", action="store_true", help="replace a file that differs")
    remove = actions.add_parser("uninstall", help="remove the service file(s) n3d wrote")
    for action in (show, install):
        action.add_argument(
            "--n3d",
            type=Path,
            default=None,
            metavar="PATH",
            help="the n3d executable to run (default: this one)",
        )
        action.add_argument(
            "--socket",
            action="store_true",
            help="Linux: also the n3d.socket unit for socket activation"
            + (" (print: that unit instead)" if action is show else ""),
        )
    for action in (show, install, remove):
        action.add_argument(
            "--platform",
            choices=("linux", "macos"),
            default=None,
            help="render for this system (default: this machine's)",
        )
    return parser


def run_service(args: argparse.Namespace, *, env: Mapping[str, str] | None = None) -> int:
    """Run the `service` action in `args`; environment from `env` (default os.environ)."""
    e: Mapping[str, str] = os.environ if env is None else env
    try:
        platform: Platform = args.platform or current_platform()
        if args.service_command == "uninstall":
            return _uninstall(platform, e)
        if args.socket and platform != "linux":
            raise ServiceError("--socket is for systemd (Linux); launchd has no equivalent here")
        files = _render(args, platform, e)
        if args.service_command == "print":
            sys.stdout.write(files[-1].text)  # with --socket, the socket unit comes last
            return 0
        if platform == "macos":
            _make_log_dir(service.home_dir(e))
        return _install(files, platform, e, force=args.force)
    except (ServiceError, ConfigError) as exc:
        print(f"n3d: {exc}", file=sys.stderr)
        return 1


def _render(
    args: argparse.Namespace, platform: Platform, env: Mapping[str, str]
) -> list[ServiceFile]:
    """The files for `platform`, rendered with the config n3d would read and pin."""
    configured: Path | None = getattr(args, "config", None)
    settings = load_settings(configured, env)
    pinned = configured or (Path(env["N3D_CONFIG"]) if env.get("N3D_CONFIG") else None)
    if pinned is not None:
        pinned = Path(os.path.abspath(pinned.expanduser()))
    n3d = find_n3d(env, explicit=args.n3d)
    return service.service_files(
        platform,
        n3d=n3d,
        stop_timeout_s=settings.server.stop_timeout_s,
        # A stop drains the proxy's requests first (docs/proxy.md), then stops Ollama.
        drain_s=settings.proxy.drain_timeout_s if settings.proxy.listen else 0.0,
        env=env,
        config=pinned,
        socket=args.socket,
    )


def find_n3d(env: Mapping[str, str], *, explicit: Path | None = None) -> Path:
    """The absolute path of the ``n3d`` to put in the service file.

    ``explicit`` (``--n3d``) if given, else the first executable of: ``sys.argv[0]``
    when it is named ``n3d``; ``n3d`` beside the running Python (its venv's bin);
    ``n3d`` on PATH. Symlinks are kept, not resolved: pipx and Homebrew point a
    stable link at a versioned target, and the link is what survives an upgrade.
    """
    if explicit is not None:
        if not (explicit.is_file() and os.access(explicit, os.X_OK)):
            raise ServiceError(f"--n3d {explicit}: not an executable file")
        return Path(os.path.abspath(explicit))
    candidates = [sys.argv[0]] if os.path.basename(sys.argv[0]) == "n3d" else []
    candidates.append(str(Path(sys.executable).parent / "n3d"))
    on_path = shutil.which("n3d", path=env.get("PATH", os.defpath))
    candidates += [on_path] if on_path else []
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Path(os.path.abspath(candidate))
    raise ServiceError("cannot find the n3d executable; give its path with --n3d PATH")


def _install(
    files: list[ServiceFile], platform: Platform, env: Mapping[str, str], *, force: bool
) -> int:
    outcomes = service.install(files, force=force)
    for f, outcome in zip(files, outcomes, strict=True):
        verb = {
            "written": "Installed",
            "replaced": "Replaced",
            "unchanged": "Already installed (unchanged):",
        }[outcome]
        print(f"{verb} {f.path}")
    if all(o == "unchanged" for o in outcomes):
        return 0
    if platform == "macos":
        _macos_next(
            files[0].path, service.home_dir(env), reload=any(o == "replaced" for o in outcomes)
        )
    else:
        _linux_next(socket=len(files) > 1)
    return 0


def _linux_next(*, socket: bool) -> None:
    units = "n3d.socket n3d" if socket else "n3d"
    print(
        "\nStart it now and at every login:\n"
        f"  systemctl --user daemon-reload && systemctl --user enable --now {units}\n"
        "(if it was already running: systemctl --user restart n3d)\n"
        "\nKeep it running while you are logged out (and start it at boot):\n"
        "  loginctl enable-linger $USER\n"
        "\nCheck it and read its logs (one JSON object per line):\n"
        "  systemctl --user status n3d\n"
        "  journalctl --user -u n3d -o cat | jq"
    )


def _make_log_dir(home: Path) -> None:
    log = launchd_log_dir(home)
    try:
        # launchd opens the log files but does not create their directory.
        log.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create {log}: {exc.strerror or exc}") from exc


def _macos_next(plist: Path, home: Path, *, reload: bool) -> None:
    target = f"gui/$(id -u)/{LABEL}"
    again = f"  launchctl bootout {target}\n" if reload else ""
    print(
        "\nLoad it now (it also starts at every login):\n"
        f"{again}  launchctl bootstrap gui/$(id -u) {plist}\n"
        "\nCheck it, restart it, and read its logs (one JSON object per line):\n"
        f"  launchctl print {target}\n"
        f"  launchctl kickstart -k {target}\n"
        f"  tail -F {launchd_log_dir(home) / 'n3d.log'} | jq"
    )


def _uninstall(platform: Platform, env: Mapping[str, str]) -> int:
    links = service.enabled_links(env) if platform == "linux" else []
    if links:
        # systemctl disables a unit by reading its [Install] section: do it first.
        units = " ".join(link.name for link in links)
        raise ServiceError(
            f"n3d is still enabled ({links[0]}); first run: systemctl --user disable --now {units}"
        )
    removed = service.uninstall(service.installed_paths(platform, env))
    if not removed:
        print("Nothing to remove: n3d's service file is not installed.")
        return 0
    for path in removed:
        print(f"Removed {path}")
    if platform == "macos":
        print(f"\nStop it if it is loaded:\n  launchctl bootout gui/$(id -u)/{LABEL}")
    else:
        print("\nLet systemd forget it:\n  systemctl --user daemon-reload")
    return 0
