"""Loaded models: runner children, keep-alive timers, reloads, eviction and runner faults.

Imitates Ollama's `server/sched.go`: one runner child per loaded model (started in
the server's own process group, as Ollama's empty `SysProcAttr` does); loads one
at a time; a request that carries `keep_alive` overwrites the model's setting and
one without it keeps it (`useLoadedRunner`); the idle timer starts when the last
request finishes, and `expires_at` is set only then, so while a model is busy
`/api/ps` shows the value from when it last went idle; a zero keep-alive unloads
once idle; a change of runner options (`num_ctx`, `num_batch`, `num_gpu`,
`main_gpu`, `use_mmap`, `num_thread`) or a dead runner reloads (`needsReload`);
beyond `OLLAMA_MAX_LOADED_MODELS` the idle model with the shortest keep-alive is
evicted. Unloading SIGKILLs the runner and reaps it. A runner that dies on its own
stays listed until the next request for it reloads it or its timer unloads it.

Two faults are carried out here (faults.py): `wedge_unload` leaves an unloading
runner alive and listed with `expires_at` in the past, requests for it waiting,
until the runner dies or the fault is lifted; `hang_runner` tells the named
model's runner to stop answering, until that runner dies (then its next runner
answers) or the fault is lifted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name
from n3d.sim import llm
from n3d.sim.config import SimConfig
from n3d.sim.faults import Faults, FaultState
from n3d.sim.llm import RunnerError, Slots
from n3d.sim.loaded import Loaded, deadline
from n3d.sim.logs import slog
from n3d.sim.store import InstalledModel, Store

__all__ = ["Loaded", "Scheduler"]

_RUNNER_OPTIONS = ("num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread")


def _target(text: str) -> str | None:
    """The key of the model a fault names (matched as Ollama matches names), if any."""
    try:
        return parse_model_name(text).key if text else None
    except InvalidModelName:
        return None


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
        self._hang_spent: set[str] = set()  # models whose hung runner has died

    def loaded(self) -> list[Loaded]:
        """Models loaded and ready, for /api/ps (a wedged unload is still listed)."""
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
            if current is not None and (not current.ready.is_set() or current.stopping):
                await self._wait_changed()  # loading, or unloading (perhaps wedged)
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
                await self._unload_now(current, reason="reload")
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
        lm = Loaded(model, runner_options, num_ctx, session, Slots(self._config.num_parallel))
        self._loaded[model.name.key] = lm
        try:
            async with self._load_lock:
                await self._make_room(lm)
                await self._start_runner(lm)
            await self._sync_hang(lm, self._faults.state())
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
            idle = [o for o in others if o.refcount == 0 and not o.stopping]
            if idle:
                victim = min(idle, key=lambda o: o.session_s)
                await self._unload_now(victim, reason="evict")
                continue
            await self._wait_changed()

    async def _start_runner(self, lm: Loaded) -> None:
        state = self._faults.state()
        started = time.monotonic()
        lm.process, lm.port = await llm.start_runner(self._store.model_blob(lm.model), lm.num_ctx)
        self._spawn(self._watch(lm, lm.process))
        slog("INFO", "sched.go:449", "loaded runners", count=len(self._loaded))
        await llm.wait_healthy(lm.process, lm.port)
        remaining = state.load_seconds - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        if state.fail_loads or not lm.alive:
            slog("ERROR", "sched.go:459", "error loading llama server", error=llm.LOAD_FAILED)
            raise RunnerError(llm.LOAD_FAILED)
        slog(
            "INFO",
            "server.go:1232",
            f"llama runner started in {time.monotonic() - started:.2f} seconds",
        )

    async def _watch(self, lm: Loaded, process: asyncio.subprocess.Process) -> None:
        """When a runner dies: a hang it was carrying is over for good."""
        await process.wait()
        if lm.hung:
            self._hang_spent.add(lm.model.name.key)
        self._changed.set()

    async def apply_faults(self, state: FaultState) -> None:
        """Bring every runner in line with `hang_runner` (called about every 0.1 s)."""
        target = _target(state.hang_runner)
        self._hang_spent &= {target} if target else set()  # named afresh: armed again
        for lm in list(self._loaded.values()):
            if lm.ready.is_set():
                await self._sync_hang(lm, state)

    async def _sync_hang(self, lm: Loaded, state: FaultState) -> None:
        key = lm.model.name.key
        want = key == _target(state.hang_runner) and key not in self._hang_spent
        if want != lm.hung and lm.alive and await llm.set_hung(lm.port, want):
            lm.hung = want
            what = "runner stops answering" if want else "runner answers again"
            slog("WARN", "sim", what, model=lm.model.name.display, port=lm.port)

    def release(self, lm: Loaded) -> None:
        """A request using `lm` finished: start its idle timer, or unload it if zero."""
        lm.refcount -= 1
        self._changed.set()
        if lm.refcount > 0 or self._loaded.get(lm.model.name.key) is not lm or lm.stopping:
            return
        lm.expires_ns = deadline(time.time_ns(), lm.session_s)
        if lm.session_s <= 0:
            self._spawn(self._unload(lm, reason="keep_alive 0"))
        elif not math.isinf(lm.session_s):
            lm.timer = asyncio.get_running_loop().call_later(
                lm.session_s, lambda: self._spawn(self._unload(lm, reason="expired"))
            )

    def expire(self, model: InstalledModel) -> None:
        """`keep_alive: 0` with no prompt: unload now if idle, else once idle."""
        lm = self._loaded.get(model.name.key)
        if lm is None or lm.stopping:
            return
        lm.session_s = 0.0
        lm.expires_ns = time.time_ns()  # expireRunner: expiresAt = now
        if lm.refcount == 0 and lm.ready.is_set():
            self._spawn(self._unload(lm, reason="unload requested"))

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _unload_now(self, lm: Loaded, *, reason: str) -> None:
        # Shielded: a request cancelled while it waits for an unload (its client went
        # away) must not leave the model half unloaded.
        await asyncio.shield(self._spawn(self._unload(lm, reason=reason)))

    async def _unload(self, lm: Loaded, *, reason: str) -> None:
        if lm.stopping:
            return
        lm.stopping = True
        if lm.timer is not None:
            lm.timer.cancel()
        now = time.time_ns()
        lm.expires_ns = min(lm.expires_ns or now, now)
        slog("INFO", "sched.go:720", "unloading runner", model=lm.model.name.display, reason=reason)
        if self._faults.state().wedge_unload and lm.alive:
            slog(
                "WARN",
                "sim",
                "unload wedged: the runner does not stop",
                model=lm.model.name.display,
            )
            while lm.alive and self._faults.state().wedge_unload:  # noqa: ASYNC110 - polled
                await asyncio.sleep(0.05)
        if self._loaded.get(lm.model.name.key) is lm:
            del self._loaded[lm.model.name.key]
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
