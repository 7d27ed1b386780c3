"""Peers the benchmarks compare n3d with, and the process chores they share.

``supervisord`` runs supervisor's daemon with one program and its control
socket, the way a small install runs it. supervisor is pip-installed into a
throwaway venv under the caller's temp dir (never a dependency of n3d) unless
a directory holding ``supervisord`` and ``supervisorctl`` is given. Imported by
the scripts beside it (``python bench/ctl.py`` puts ``bench/`` on ``sys.path``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Supervisord", "install_supervisor", "kill_group", "supervisord", "wait_for_path"]


def wait_for_path(path: Path, proc: subprocess.Popen[bytes] | None, within_s: float) -> bool:
    """Poll until ``path`` exists (True), ``proc`` exits or ``within_s`` passes (False)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc``'s process group and every group its descendants lead; reap it."""
    try:
        import psutil  # bench only: the simulator runs in its own process group

        groups = {os.getpgid(c.pid) for c in psutil.Process(proc.pid).children(recursive=True)}
    except Exception:  # best effort; the caller's own group is killed below
        groups = set()
    groups.add(proc.pid)
    for group in groups:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    proc.wait()


def install_supervisor(tmp: Path) -> Path | None:
    """pip-install supervisor into ``tmp/venv``; its bin dir, or None if that failed."""
    venv = tmp / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "supervisor"],
                         capture_output=True) if made.returncode == 0 else made
    if pip.returncode != 0:
        print("supervisor could not be installed; skipping the peer", file=sys.stderr)
        return None
    return venv / "bin"


@dataclass(frozen=True)
class Supervisord:
    """A running supervisord: its process and the `supervisorctl status` command."""

    proc: subprocess.Popen[bytes]
    status_command: list[str]


@contextmanager
def supervisord(
    tmp: Path, bin_dir: Path | None, program: str = "sleep 3600"
) -> Iterator[Supervisord | None]:
    """A supervisord with one ``program``, answering supervisorctl (None if unavailable).

    Runs in a session of its own; on leaving, it and its program are SIGKILLed.
    """
    if bin_dir is None:
        bin_dir = install_supervisor(tmp)
        if bin_dir is None:
            yield None
            return
    sock = tmp / "sv.sock"
    conf = tmp / "supervisord.conf"
    conf.write_text(
        f"[unix_http_server]\nfile={sock}\n\n[supervisord]\nlogfile={tmp}/sv.log\n"
        f"pidfile={tmp}/sv.pid\nnodaemon=true\n\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
        f"[supervisorctl]\nserverurl=unix://{sock}\n\n"
        f"[program:sleeper]\ncommand={program}\n"
    )
    proc = subprocess.Popen([str(bin_dir / "supervisord"), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        command = [str(bin_dir / "supervisorctl"), "-c", str(conf), "status"]
        ok = wait_for_path(sock, proc, 20)
        for _ in range(100):
            if ok and subprocess.run(command, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        yield Supervisord(proc, command) if ok else None
    finally:
        kill_group(proc)
