"""A real `n3d run --simulate` subprocess with its control socket, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from n3d.client import Connection


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], Any], within_s: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what or check}")
        time.sleep(0.02)


class Daemon:
    """`python -m n3d run --simulate` in ``home`` with a short socket path."""

    def __init__(self, home: Path, *, config: dict[str, Any] | None = None, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.socket = home / "s.sock"
        self.config_path = home / "n3d.toml"
        base = {
            "ollama": {"base_url": f"http://127.0.0.1:{self.port}", "health_check_interval": 1},
            "server": {"mode": "managed", "stop_timeout": 3},
            "restart": {"backoff_initial": 0.05},
        }
        for section, values in (config or {}).items():
            base.setdefault(section, {}).update(values)
        self.config_path.write_text(tomli_w.dumps(base))
        self.log = home / "n3d.jsonl"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OLLAMA", "N3D_", "NAMEL3SS_", "XDG_", "NOTIFY_", "LISTEN_"))
        }
        self.env.update(
            HOME=str(home),
            XDG_RUNTIME_DIR=str(home / "run"),
            XDG_STATE_HOME=str(home / "state"),
            XDG_CONFIG_HOME=str(home / "cfg"),
            N3D_SOCKET=str(self.socket),
            OLLAMA_MODELS=str(home / "models"),
            OLLAMA_SIM_PULL_SECONDS="0.3",
            OLLAMA_SIM_LOAD_SECONDS="0.1",
            OLLAMA_SIM_REQUEST_LOG=str(home / "requests.jsonl"),
            **env,
        )
        (home / "run").mkdir(mode=0o700, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> Daemon:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "n3d", "run", "--simulate", "--log-format", "json",
                 "--config", str(self.config_path), *extra],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_socket(self, within_s: float = 20.0) -> None:
        def answers() -> bool:
            try:
                with Connection(self.socket, timeout=2) as conn:
                    conn.call("status")
                return True
            except Exception:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
                return False

        wait_until(answers, within_s, "the control socket")

    def wait_state(self, state: str, within_s: float = 20.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            with Connection(self.socket, timeout=5) as conn:
                status: dict[str, Any] = conn.call("status")
            return status if status["server"]["state"] == state else None

        result: dict[str, Any] = wait_until(reached, within_s, f"state {state}")
        return result

    def call(self, method: str, params: Any = None, **kw: Any) -> Any:
        with Connection(self.socket, timeout=kw.pop("timeout", 10)) as conn:
            return conn.call(method, params, **kw)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            if not line.startswith("{"):
                continue  # stderr shares the file: `n3d: ...` messages are plain text
            entry = json.loads(line)
            if name is None or entry.get("event") == name:
                out.append(entry)
        return out

    def requests(self, path: str) -> int:
        log = self.home / "requests.jsonl"
        if not log.exists():
            return 0
        return sum(1 for line in log.read_text().splitlines() if json.loads(line)["path"] == path)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.log.exists():
            for line in self.log.read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError):
                    entry = json.loads(line)
                    if entry.get("event") == "ollama.spawned":
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(int(entry["pid"]), signal.SIGKILL)


@pytest.fixture
def short_home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="n3e", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon_factory(short_home: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(name: str = "d", **kw: Any) -> Daemon:
        home = short_home / name
        home.mkdir(mode=0o700)
        d = Daemon(home, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    d = daemon_factory().start()
    d.wait_socket()
    d.wait_state("running")
    return d
