"""`n3d run --simulate` as a real subprocess, for tests, benchmarks and drills.

`DaemonProcess` gives one daemon its own short home directory (runtime, state,
config and models dirs inside it), a control socket at ``home/s.sock`` (keep
``home`` short: sun_path holds 107 bytes), a free port for the simulator, fast
simulator timings, and files instead of pipes: the JSON log (stdout) and
stderr apart, so every line of the log must parse. It knows every process
group the daemon spawned (from the ``ollama.spawned`` events), so
:meth:`DaemonProcess.cleanup` leaves nothing behind even after n3d was
SIGKILLed. Standard library plus tomli-w only; never imported by the daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from n3d.client import Connection
from n3d.testing.child import spawn
from n3d.testing.simulator import free_port

__all__ = ["DaemonProcess", "wait_until"]

# Environment a daemon under test must not inherit from whoever runs the tests.
_FOREIGN_ENV = ("OLLAMA", "N3D_", "NAMEL3SS_", "XDG_", "NOTIFY_", "LISTEN_", "WATCHDOG_")


def wait_until(check: Callable[[], Any], within_s: float = 20.0, what: str = "") -> Any:
    """Poll ``check`` every 20 ms until it returns something truthy; that value."""
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what or check}")
        time.sleep(0.02)


class DaemonProcess:
    """One `python -m n3d run --simulate` living in ``home``.

    ``config`` is merged over a fast test configuration (managed mode, a 1 s
    health interval, short backoff) and the simulator's pulls and loads are
    shortened; with ``fast=False`` (benchmarks) only the URL and managed mode are
    set, so every other value is n3d's default and the simulator keeps its own
    timings. ``env`` entries are added to the child's environment
    (``OLLAMA_SIM_*`` switches, say). The config file stays at
    ``config_path``: rewrite it and send SIGHUP to test a reload; an existing
    one is kept when ``config`` is None. Several daemons may share a home (a
    second n3d against the first) if each has its own ``name`` for its logs.
    ``default_socket`` leaves the socket where n3d puts it by default (the
    runtime dir) instead of ``home/s.sock``. The simulator's run-time control
    file is ``control_path`` (see docs/simulator.md). ``simulate=False`` runs the
    config's ``[server] command`` instead of the simulator.
    """

    def __init__(
        self,
        home: Path,
        *,
        config: dict[str, Any] | None = None,
        port: int | None = None,
        name: str = "n3d",
        default_socket: bool = False,
        fast: bool = True,
        simulate: bool = True,
        **env: str,
    ) -> None:
        self.home = home
        self.fast = fast
        self.simulate = simulate
        self.port = free_port() if port is None else port
        self.socket = home / "run" / "n3" / "n3d.sock" if default_socket else home / "s.sock"
        self.config_path = home / "n3d.toml"
        self.log = home / f"{name}.jsonl"
        self.err = home / f"{name}.err"
        self.request_log_path = home / "requests.jsonl"
        self.control_path = home / "control.json"
        if config is not None or not self.config_path.exists():
            self.write_config(config or {})
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
        self.env.update(
            HOME=str(home),
            XDG_RUNTIME_DIR=str(home / "run"),
            XDG_STATE_HOME=str(home / "state"),
            XDG_CONFIG_HOME=str(home / "cfg"),
            OLLAMA_MODELS=str(home / "models"),
            OLLAMA_SIM_REQUEST_LOG=str(self.request_log_path),
            OLLAMA_SIM_CONTROL=str(self.control_path),
            PYTHONUNBUFFERED="1",
        )
        if fast:
            self.env.update(OLLAMA_SIM_PULL_SECONDS="0.3", OLLAMA_SIM_LOAD_SECONDS="0.1")
        if not default_socket:
            self.env["N3D_SOCKET"] = str(self.socket)
        self.env.update(env)
        (home / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, config: dict[str, Any]) -> None:
        """(Re)write the config file: ``config`` merged over the base (see the class)."""
        base: dict[str, Any] = {
            "ollama": {"base_url": f"http://127.0.0.1:{self.port}"},
            "server": {"mode": "managed"},
        }
        if self.fast:
            base["ollama"]["health_check_interval"] = 1
            base["server"]["stop_timeout"] = 3
            base["restart"] = {"backoff_initial": 0.05}
        for section, values in config.items():
            base.setdefault(section, {}).update(values)
        self.config_path.write_text(tomli_w.dumps(base))

    @property
    def runtime(self) -> Path:
        """n3d's runtime dir (lock, pid files)."""
        return self.home / "run" / "n3"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, *extra: str) -> DaemonProcess:
        """Spawn n3d in a session of its own (does not wait; see :meth:`wait_ready`)."""
        simulate = ["--simulate"] if self.simulate else []
        argv = [sys.executable, "-m", "n3d", "run", *simulate, "--log-format", "json"]
        self.proc = spawn(
            [*argv, "--config", str(self.config_path), *extra], self.env, self.log, self.err
        )
        return self

    def wait_socket(self, within_s: float = 20.0) -> None:
        """Wait until the control socket answers `status`."""

        def answers() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(self.describe())
            try:
                self.call("status", timeout=2)
            except Exception:
                return False
            return True

        wait_until(answers, within_s, "the control socket")

    def wait_state(self, state: str, within_s: float = 20.0) -> dict[str, Any]:
        """Wait until `status` reports server state ``state``; that status."""

        def reached() -> dict[str, Any] | None:
            status: dict[str, Any] = self.call("status", timeout=5)
            return status if status["server"]["state"] == state else None

        try:
            result: dict[str, Any] = wait_until(reached, within_s, f"state {state}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.describe()}") from None
        return result

    def wait_ready(self, state: str = "running", within_s: float = 20.0) -> DaemonProcess:
        """Wait for the socket, then for server state ``state``."""
        self.wait_socket(within_s)
        self.wait_state(state, within_s)
        return self

    def call(self, method: str, params: Any = None, **kw: Any) -> Any:
        """One JSON-RPC call on a fresh connection (``timeout`` defaults to 10 s)."""
        with Connection(self.socket, timeout=kw.pop("timeout", 10)) as conn:
            return conn.call(method, params, **kw)

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []

    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def set_control(self, **switches: Any) -> None:
        """Replace the simulator's control file atomically (``hang=True``, ...)."""
        tmp = self.control_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(switches))
        tmp.replace(self.control_path)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log's events (named ``name`` if given); a half-written last line is skipped."""
        out = []
        for line in self.log_lines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if name is None or entry.get("event") == name:
                out.append(entry)
        return out

    def states(self) -> list[str]:
        """Every server state n3d moved to, in order."""
        return [e["to"] for e in self.events("server.state")]

    def spawned_groups(self) -> set[int]:
        """Process groups of every serve n3d spawned (serve leads its own group)."""
        return {int(e["pid"]) for e in self.events("ollama.spawned")}

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """The simulator's request log (all simulators this daemon ran), by ``path``."""
        if not self.request_log_path.exists():
            return []
        found = []
        for line in self.request_log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if path is None or entry.get("path") == path:
                    found.append(entry)
        return found

    def describe(self) -> str:
        """Where n3d is, for a failure message: its exit status and its log's end."""
        code = None if self.proc is None else self.proc.poll()
        tail = "\n".join(self.log_lines()[-40:])
        return (
            f"n3d exit status {code}; stderr: {self.stderr()[-2000:]}\n"
            f"last lines of {self.log}:\n{tail}"
        )

    def stop(self, within_s: float = 30.0) -> int:
        """SIGTERM n3d and wait for it; its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(within_s)

    def kill(self) -> None:
        """SIGKILL n3d alone (its server's group lives on, as after a crash) and reap it."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def cleanup(self) -> None:
        """SIGKILL n3d and every process group it spawned; safe to call twice."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
        for group in self.spawned_groups():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
