"""Helpers shared by the supervisor tests (imported, not collected)."""

from __future__ import annotations

import inspect
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import tomli_w

from n3d.config import Settings, load_settings
from n3d.ollama.client import OllamaClient
from n3d.state import ServerState, Snapshot
from n3d.supervisor.supervisor import Supervisor

T = TypeVar("T")


class JsonLogs:
    """n3d's real JSON log output, captured in memory."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines() if line]


async def eventually(
    check: Callable[[], Awaitable[T] | T], *, within_s: float = 10.0, interval: float = 0.02
) -> T:
    """Poll ``check`` until it returns a truthy value (sync or async); fail after ``within_s``."""
    with anyio.fail_after(within_s):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            await anyio.sleep(interval)


async def settled(
    read: Callable[[], T], *, quiet_s: float = 0.3, within_s: float = 10.0, interval: float = 0.02
) -> T:
    """Poll ``read`` until its value has not changed for ``quiet_s``; that value.

    For logs written just after the fact (the simulator's request log): a count
    read once could still be missing the newest entry.
    """
    with anyio.fail_after(within_s):
        value, since = read(), anyio.current_time()
        while anyio.current_time() - since < quiet_s:
            await anyio.sleep(interval)
            now = read()
            if now != value:
                value, since = now, anyio.current_time()
        return value


SIM = (sys.executable, "-m", "n3d.sim", "serve")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sim_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    """A clean environment for the simulator (or n3d) under ``home``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OLLAMA_", "N3D_", "NAMEL3SS_", "NOTIFY_", "WATCHDOG_",
                                "LISTEN_", "XDG_"))}
    for sub in ("run", "config", "state", "models"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "run").chmod(0o700)
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(home / "run"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        OLLAMA_HOST=f"127.0.0.1:{port}",
        OLLAMA_MODELS=str(home / "models"),
        OLLAMA_SIM_REQUEST_LOG=str(home / "requests.jsonl"),
        OLLAMA_SIM_CONTROL=str(home / "control.json"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


# Small intervals: each test runs in a few seconds on two cores.
FAST: dict[str, dict[str, Any]] = {
    "ollama": {"health_check_interval": 0.3},
    "server": {"start_timeout": 15, "stop_timeout": 2, "health_timeout": 0.25,
               "failures_before_restart": 2},
    "restart": {"backoff_initial": 0.05, "backoff_max": 0.4, "max_failures": 3, "window": 60},
}


def write_config(path: Path, port: int, **sections: dict[str, Any]) -> Path:
    """A TOML config for a server at 127.0.0.1:``port``: FAST, then ``sections``."""
    doc: dict[str, dict[str, Any]] = {k: dict(v) for k, v in FAST.items()}
    doc["ollama"]["base_url"] = f"http://127.0.0.1:{port}"
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    path.write_text(tomli_w.dumps(doc))
    return path


def settings_for(tmp: Path, port: int, **sections: dict[str, Any]) -> Settings:
    path = write_config(tmp / "n3d.toml", port, **sections)
    return load_settings(path, env={"HOME": str(tmp)})


def requests_seen(home: Path, method: str = "HEAD", path: str = "/") -> int:
    """How many ``method path`` requests the simulator logged."""
    log = home / "requests.jsonl"
    if not log.exists():
        return 0
    count = 0
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        count += entry.get("method") == method and entry.get("path") == path
    return count


def set_faults(home: Path, **faults: Any) -> None:
    """Write the simulator's control file (atomically: it may be read at any moment)."""
    tmp = home / "control.json.tmp"
    tmp.write_text(json.dumps(faults))
    os.replace(tmp, home / "control.json")


RUNNER_ENV = {"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2", "OLLAMA_SIM_LOAD_SECONDS": "0"}


def load_model(port: int, model: str = "llama3.2") -> None:
    """Make the simulator load ``model``: it starts a runner child in its group."""
    response = httpx.post(f"http://127.0.0.1:{port}/api/generate",
                          json={"model": model, "keep_alive": -1}, timeout=10, trust_env=False)
    response.raise_for_status()


def start_simulator(home: Path, port: int, **extra: str) -> subprocess.Popen[bytes]:
    """A simulator n3d did not start, in its own session (callers kill its group)."""
    return subprocess.Popen(list(SIM), env=sim_env(home, port, **extra), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def answers(port: int) -> bool:
    try:
        return httpx.head(f"http://127.0.0.1:{port}/", timeout=1, trust_env=False).is_success
    except httpx.HTTPError:
        return False


@asynccontextmanager
async def supervising(sup: Supervisor, pgids: list[int]) -> AsyncIterator[Supervisor]:
    """Run ``sup``; every child's group goes to ``pgids`` (killed at teardown anyway)."""
    sup.store.subscribe(lambda _e, snap: snap.pid and snap.pid not in pgids
                        and pgids.append(snap.pid))
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        try:
            yield sup
        finally:
            with anyio.fail_after(15, shield=True):
                await sup.shutdown()
            tg.cancel_scope.cancel()


def states(sup: Supervisor) -> list[str]:
    return [e.target.value for e in sup.store.history]


def is_(*wanted: ServerState) -> Callable[[Snapshot], bool]:
    return lambda snap: snap.state in wanted


async def until(sup: Supervisor, *wanted: ServerState, within_s: float = 20) -> Snapshot:
    with anyio.fail_after(within_s):
        return await sup.wait_for(is_(*wanted))


class HttpOllama:
    """The supervisor's heartbeat and version over real HTTP, as the daemon wires them.

    The daemon passes a client it keeps open for its whole run; a test has no such
    place to close one, so each call opens and closes a client of its own.
    """

    def __init__(self, settings: Settings) -> None:
        self._base_url = settings.ollama.base_url
        self._timeout_s = settings.server.health_timeout_s

    async def heartbeat(self, timeout_s: float) -> float:
        async with OllamaClient(self._base_url, timeout_s=self._timeout_s) as client:
            return await client.heartbeat(timeout_s)

    async def version(self) -> str:
        async with OllamaClient(self._base_url, timeout_s=self._timeout_s) as client:
            return await client.version()


def supervisor_for(settings: Settings, **kwargs: Any) -> Supervisor:
    """A :class:`Supervisor` probing the base URL over HTTP (:class:`HttpOllama`)."""
    ollama = HttpOllama(settings)
    return Supervisor(settings, probe=ollama.heartbeat, version=ollama.version, **kwargs)


def make(tmp_path: Path, port: int, mode: str = "managed", command: tuple[str, ...] = SIM,
         **env: str) -> Supervisor:
    settings = settings_for(tmp_path, port, server={"mode": mode})
    return supervisor_for(settings, command=command, runtime_dir=tmp_path / "home" / "run",
                          environ=sim_env(tmp_path / "home", port, **env))
