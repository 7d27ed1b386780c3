"""Start and stop the simulator as a real subprocess, for tests and drills.

`SimulatorProcess` runs `python -m n3d.sim serve` in a new session (so its whole
process group, runners included, can be killed at the end), with its own
`OLLAMA_MODELS`, a free port, fast timings and log files instead of pipes (so it
never blocks on a full pipe). Not imported by the server itself.

For liveness tests it also reads what a supervisor would: each runner's `--model`
blob (:meth:`SimulatorProcess.runner_blobs`), a process's CPU seconds
(:func:`cpu_seconds`) and the request log, whose records carry each request's body.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from n3d.testing.child import spawn

__all__ = ["FAST_ENV", "SimulatorProcess", "cpu_seconds", "free_port", "head_ok"]

# Timings small enough for tests, large enough that progress and loads are observable.
FAST_ENV = {
    "OLLAMA_SIM_PULL_SECONDS": "0.2",
    "OLLAMA_SIM_LOAD_SECONDS": "0.2",
    "OLLAMA_SIM_TOKEN_SECONDS": "0",
    "GIN_MODE": "release",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def head_ok(port: int, timeout: float = 0.5) -> bool:
    """True when a server on 127.0.0.1:``port`` answers `HEAD /` with 200 within ``timeout``.

    A raw HTTP/1.1 request on a fresh connection: cheap enough to poll every few ms.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time `pid` has used so far (its threads included)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _model_arg(cmdline: list[str]) -> str | None:
    if "--model" in cmdline[:-1]:
        return cmdline[cmdline.index("--model") + 1]
    return None


class SimulatorProcess:
    """One `ollama-sim serve` child: start, wait for readiness, inspect, stop."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str] | None = None,
        *,
        port: int | None = None,
        fast: bool = True,
    ) -> None:
        self.workdir = workdir
        self.port = free_port() if port is None else port
        self.models_dir = workdir / "models"
        self.stdout_path = workdir / "sim.stdout"
        self.stderr_path = workdir / "sim.stderr"
        self.env: dict[str, str] = {
            k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")
        }
        self.env.update(
            {"OLLAMA_HOST": f"127.0.0.1:{self.port}", "OLLAMA_MODELS": str(self.models_dir)}
        )
        if fast:
            self.env.update(FAST_ENV)
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> SimulatorProcess:
        """Spawn the simulator (does not wait for readiness)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "n3d.sim", "serve"]
        self.proc = spawn(argv, self.env, self.stdout_path, self.stderr_path)
        return self

    def is_ready(self, timeout: float = 0.5) -> bool:
        """True when `HEAD /` answers 200 within `timeout` seconds."""
        return head_ok(self.port, timeout)

    def wait_ready(self, timeout: float = 10.0) -> SimulatorProcess:
        """Poll `HEAD /` until it answers; raise with the simulator's stderr if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited {self.proc.returncode}:\n{self.stderr()}")
            if self.is_ready():
                return self
            time.sleep(0.02)
        raise TimeoutError(f"simulator not ready after {timeout}s:\n{self.stderr()}")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def group_pids(self) -> set[int]:
        """PIDs alive in the simulator's process group (itself and its runners)."""
        # `ps` works alike on Linux and macOS; zombies (state Z) are not alive.
        table = subprocess.run(
            ["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True, check=True
        ).stdout
        found = set()
        for line in table.splitlines():
            fields = line.split()
            if len(fields) >= 3 and int(fields[1]) == self.pid and not fields[2].startswith("Z"):
                found.add(int(fields[0]))
        return found

    def runner_pids(self) -> set[int]:
        """The runner children: every group member except the server."""
        return self.group_pids() - {self.pid}

    def runner_blobs(self) -> dict[int, str]:
        """Each live runner's pid and the blob path of its `--model` argument."""
        found = {}
        for pid in self.runner_pids():
            try:
                model = _model_arg(psutil.Process(pid).cmdline())
            except psutil.Error:
                continue  # it died meanwhile
            if model is not None:
                found[pid] = model
        return found

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM the server and wait; its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill_group(self) -> None:
        """SIGKILL the whole process group (cleanup; safe to call twice)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def request_log(self) -> list[dict[str, Any]]:
        """Records of `OLLAMA_SIM_REQUEST_LOG`, if that was set: `ts`, `method`, `path`,
        `status` (499 when the client left first), `duration_ms` and `body` (the
        request's JSON, its text when not JSON, or None when empty)."""
        path = self.env.get("OLLAMA_SIM_REQUEST_LOG")
        if not path or not Path(path).exists():
            return []
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line]
