"""`n3d run` as a real subprocess, with its JSON log read back (imported, not collected)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from .helpers import eventually, sim_env, write_config

Event = dict[str, Any]


class N3dProcess:
    """One `python -m n3d run --simulate` under ``home``; every group it made is tracked."""

    def __init__(self, home: Path, port: int, *, name: str = "n3d", **env: str) -> None:
        self.home = home
        self.port = port
        self.config = home / "n3d.toml"
        if not self.config.exists():
            write_config(self.config, port, server={"mode": "managed"})
        self.env = sim_env(home, port, **env)
        del self.env["OLLAMA_HOST"]  # the config file says where; like a user's shell
        self.log = home / f"{name}.jsonl"
        self.err = home / f"{name}.err"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def runtime(self) -> Path:
        return self.home / "run" / "n3"

    def start(self) -> N3dProcess:
        with self.log.open("ab") as out, self.err.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "n3d", "run", "--config", str(self.config),
                 "--simulate", "--log-format", "json"],
                env=self.env, stdout=out, stderr=err, start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def events(self, event: str | None = None) -> list[Event]:
        found = []
        if not self.log.exists():
            return found
        for line in self.log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line being written
            if event is None or entry.get("event") == event:
                found.append(entry)
        return found

    def states(self) -> list[str]:
        return [e["to"] for e in self.events("server.state")]

    async def wait_for(self, check: Callable[[list[Event]], Any], within_s: float = 20) -> Any:
        try:
            return await eventually(lambda: check(self.events()), within_s=within_s)
        except TimeoutError as exc:
            raise AssertionError(f"timed out after {within_s}s; {self.describe()}") from exc

    def describe(self) -> str:
        """Where n3d is, for a failure message: its exit status and the ends of its logs."""
        code = None if self.proc is None else self.proc.poll()
        tails = []
        for path in (self.log, self.err):
            text = path.read_text(errors="replace") if path.exists() else "(missing)"
            tails.append(f"--- {path.name} (last 3000 chars):\n{text[-3000:]}")
        return f"n3d exit status {code}\n" + "\n".join(tails)

    async def running(self, within_s: float = 20) -> int:
        """Wait for state running; returns serve's pid."""
        event = await self.wait_for(
            lambda evs: next((e for e in reversed(evs) if e.get("event") == "server.state"
                              and e["to"] == "running"), None), within_s)
        return int(event["pid"])

    def signal(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    async def exit_code(self, within_s: float = 20) -> int:
        assert self.proc is not None
        proc = self.proc
        with anyio.fail_after(within_s):
            return await anyio.to_thread.run_sync(proc.wait)

    def cleanup(self) -> None:
        """SIGKILL n3d and every process group it spawned; reap n3d."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)
        for entry in self.events("ollama.spawned"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(entry["pid"]), signal.SIGKILL)
