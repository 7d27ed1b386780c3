"""Loaded models: runner children, keep-alive timers, reloads and eviction.

Imitates Ollama's `server/sched.go`: one runner child per loaded model (started in
the server's own process group, as Ollama's empty `SysProcAttr` does); loads one
at a time; a request that carries `keep_alive` overwrites the model's setting and
one without it keeps it (`useLoadedRunner`); the idle timer starts when the last
request finishes; a zero keep-alive unloads once idle; a change of runner options
(`num_ctx`, `num_batch`, `num_gpu`, `main_gpu`, `use_mmap`, `num_thread`) reloads
(`needsReload`); beyond `OLLAMA_MAX_LOADED_MODELS` the idle model with the
shortest keep-alive is evicted. Unloading SIGKILLs the runner and reaps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from n3d.sim.config import SimConfig
from n3d.sim.faults import Faults
from n3d.sim.logs import slog
from n3d.sim.store import InstalledModel, Store
from n3d.sim.wire import MAX_DURATION_NS

__all__ = ["LOAD_FAILED", "LoadError", "Loaded", "Scheduler"]

LOAD_FAILED = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details"
)
_RUNNER_OPTIONS = ("num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread")


class LoadError(Exception):
    """A load failed; the message is Ollama's 500 text."""


@dataclass(eq=False)
class Loaded:
    """One loaded (or loading) model and its runner child."""

    model: InstalledModel
    runner_options: dict[str, Any]
    num_ctx: int
    session_s: float  # keep-alive seconds; math.inf = forever
    process: asyncio.subprocess.Process | None = None
    port: int = 0
    refcount: int = 0
    expires_ns: int = 0  # valid while idle; estimated while busy or loading
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None

    @property
    def size(self) -> int:
        # File size plus a KV-cache estimate, as a real runner's memory grows with num_ctx.
        return self.model.size + self.num_ctx * 65536

    def expires_at_ns(self) -> int:
        if self.refcount > 0 or not self.ready.is_set():
            return _deadline(time.time_ns(), self.session_s)
        return self.expires_ns

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


def _deadline(now_ns: int, session_s: float) -> int:
    if math.isinf(session_s):
        return now_ns + MAX_DURATION_NS  # Go stores forever as MaxInt64: ~year 2318
    return now_ns + int(session_s * 1e9)


def _free_port() -> int:
    # Ollama picks a runner port the same way: listen on :0, note the port, close.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Scheduler:
    """Owns every runner child; all methods run on the event loop thread."""

    def __init__(self, config: SimConfig, faults: Faults, store: Store) -> None:
        self._config = config
        self._faults = faults
        self._store = store
        self._loaded: dict[str, Loaded] = {}
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def loaded(self) -> list[Loaded]:
        """Models loaded and ready, for /api/ps."""
        return [lm for lm in self._loaded.values() if lm.ready.is_set()]

    def _wanted(self, model: InstalledModel, options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        trained = int(model.meta.get("context_length", 0) or 0)
        requested = options.get("num_ctx")
        num_ctx = requested if isinstance(requested, int) and requested > 0 else None
        num_ctx = num_ctx or self._config.default_num_ctx
        if trained:
            num_ctx = min(num_ctx, trained)  # Ollama caps num_ctx at the trained context
        return num_ctx, {k: options.get(k) for k in _RUNNER_OPTIONS}

    async def acquire(
        self, model: InstalledModel, keep_alive_s: float | None, options: dict[str, Any]
    ) -> Loaded:
        """A ready runner for `model`, loading or reloading it first if needed."""
        key = model.name.key
        num_ctx, runner_options = self._wanted(model, options)
        while True:
            current = self._loaded.get(key)
            if current is not None and not current.ready.is_set():
                await current.ready.wait()
                continue
            if (
                current is not None
                and current.alive
                and current.num_ctx == num_ctx
                and current.runner_options == runner_options
            ):
                current.refcount += 1
                if current.timer is not None:
                    current.timer.cancel()
                    current.timer = None
                if keep_alive_s is not None:
                    current.session_s = keep_alive_s
                return current
            if current is not None:
                if current.refcount > 0:  # a reload waits for in-flight requests
                    await self._wait_changed()
                    continue
                await self._unload(current, reason="reload")
                continue
            return await self._load(model, keep_alive_s, num_ctx, runner_options)

    async def _wait_changed(self) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), 0.05)

    async def _load(
        self,
        model: InstalledModel,
        keep_alive_s: float | None,
        num_ctx: int,
        runner_options: dict[str, Any],
    ) -> Loaded:
        session = self._config.keep_alive_s if keep_alive_s is None else keep_alive_s
        lm = Loaded(model, runner_options, num_ctx, session)
        self._loaded[model.name.key] = lm
        try:
            async with self._load_lock:
                await self._make_room(lm)
                await self._start_runner(lm)
        except BaseException:
            self._loaded.pop(model.name.key, None)
            if lm.process is not None and lm.process.returncode is None:
                lm.process.kill()
                await lm.process.wait()
            lm.ready.set()
            self._changed.set()
            raise
        lm.refcount = 1
        lm.ready.set()
        self._changed.set()
        return lm

    async def _make_room(self, lm: Loaded) -> None:
        while True:
            others = [o for o in self._loaded.values() if o is not lm and o.ready.is_set()]
            if len(others) < self._config.max_loaded:
                return
            idle = [o for o in others if o.refcount == 0]
            if idle:
                victim = min(idle, key=lambda o: o.session_s)
                await self._unload(victim, reason="evict")
                continue
            await self._wait_changed()

    async def _start_runner(self, lm: Loaded) -> None:
        state = self._faults.state()
        started = time.monotonic()
        lm.port = _free_port()
        blob = self._store.blob_path(lm.model.layers[0]) if lm.model.layers else self._store.blobs
        cmd = [
            sys.executable,
            "-m",
            "n3d.sim.runner",
            "--model",
            str(blob),
            "--port",
            str(lm.port),
            "--ctx-size",
            str(lm.num_ctx),
        ]
        slog("INFO", "server.go:398", "starting llama server", cmd=" ".join(cmd))
        # No start_new_session: runners share the server's process group, like Ollama's.
        lm.process = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL)
        slog("INFO", "sched.go:449", "loaded runners", count=len(self._loaded))
        await self._wait_runner_healthy(lm)
        remaining = state.load_seconds - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        if state.fail_loads or not lm.alive:
            slog("ERROR", "sched.go:459", "error loading llama server", error=LOAD_FAILED)
            raise LoadError(LOAD_FAILED)
        slog(
            "INFO",
            "server.go:1232",
            f"llama runner started in {time.monotonic() - started:.2f} seconds",
        )

    async def _wait_runner_healthy(self, lm: Loaded) -> None:
        deadline = time.monotonic() + 30.0
        while lm.alive and time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", lm.port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await reader.read()
            writer.close()
            return
        raise LoadError(LOAD_FAILED)

    def release(self, lm: Loaded) -> None:
        """A request using `lm` finished: start its idle timer, or unload it if zero."""
        lm.refcount -= 1
        self._changed.set()
        if lm.refcount > 0 or self._loaded.get(lm.model.name.key) is not lm:
            return
        lm.expires_ns = _deadline(time.time_ns(), lm.session_s)
        if lm.session_s <= 0:
            self._spawn(self._unload(lm, reason="keep_alive 0"))
        elif not math.isinf(lm.session_s):
            lm.timer = asyncio.get_running_loop().call_later(
                lm.session_s, lambda: self._spawn(self._unload(lm, reason="expired"))
            )

    def expire(self, model: InstalledModel) -> None:
        """`keep_alive: 0` with no prompt: unload now if idle, else once idle."""
        lm = self._loaded.get(model.name.key)
        if lm is None:
            return
        lm.session_s = 0.0
        if lm.refcount == 0 and lm.ready.is_set():
            self._spawn(self._unload(lm, reason="unload requested"))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unload(self, lm: Loaded, *, reason: str) -> None:
        if self._loaded.get(lm.model.name.key) is lm:
            del self._loaded[lm.model.name.key]
        if lm.timer is not None:
            lm.timer.cancel()
        slog("INFO", "sched.go:720", "unloading runner", model=lm.model.name.display, reason=reason)
        if lm.process is not None and lm.process.returncode is None:
            lm.process.kill()  # Ollama's llama.Close(): Process.Kill(), then Wait()
            await lm.process.wait()
        self._changed.set()

    async def shutdown(self) -> None:
        """SIGKILL every runner and reap it (Ollama's `unloadAllRunners`)."""
        for lm in list(self._loaded.values()):
            if lm.timer is not None:
                lm.timer.cancel()
            if lm.process is not None and lm.process.returncode is None:
                lm.process.kill()
        for lm in list(self._loaded.values()):
            if lm.process is not None:
                await lm.process.wait()
        self._loaded.clear()
