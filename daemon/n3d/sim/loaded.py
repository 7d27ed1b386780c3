"""One loaded model as the scheduler and `/api/ps` see it: Ollama's `runnerRef`.

`expires_at` follows `server/sched.go`: it is set each time the model goes idle (the
last in-flight request finished) and left alone while requests run, so a model busy
with a long generation shows the value from when it last went idle (research/
fidelity.md B8); a runner never idle yet has none, and `PsHandler` shows now plus
its keep-alive.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass, field

from n3d.sim.llm import Slots
from n3d.sim.options import RunnerOptions
from n3d.sim.store import InstalledModel
from n3d.sim.wire import MAX_DURATION_NS

__all__ = ["Loaded", "deadline"]


@dataclass(eq=False)
class Loaded:
    """One loaded (or loading) model and its runner child."""

    model: InstalledModel
    runner_options: RunnerOptions  # as requested and merged: what a reload compares
    num_ctx: int  # the runner's context (capped at the model's trained context)
    session_s: float  # keep-alive seconds; math.inf = forever
    slots: Slots
    process: asyncio.subprocess.Process | None = None
    port: int = 0
    refcount: int = 0
    expires_ns: int = 0  # set each time the model goes idle; 0 = never idle yet
    stopping: bool = False  # an unload has begun (and may be wedged)
    hung: bool = False  # the runner has been told to stop answering
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None

    @property
    def size(self) -> int:
        # File size plus a KV-cache estimate, as a real runner's memory grows with num_ctx.
        return self.model.size + self.num_ctx * 65536

    def expires_at_ns(self) -> int:
        # PsHandler: a runner never idle yet has no expiresAt; it shows now + keep-alive.
        if self.expires_ns == 0:
            return deadline(time.time_ns(), self.session_s)
        return self.expires_ns

    @property
    def alive(self) -> bool:
        """The runner has not exited. Ollama pings a runner before reusing it
        (`needsReload`), so a runner that died is reloaded by the next request;
        asyncio learns of an exit a moment late (its child watcher), so the process
        is looked at directly too, without reaping it (WNOWAIT)."""
        process = self.process
        if process is None or process.returncode is not None:
            return False
        try:
            flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
            return os.waitid(os.P_PID, process.pid, flags) is None
        except ChildProcessError:  # already reaped: asyncio is about to say so
            return False


def deadline(now_ns: int, session_s: float) -> int:
    """When a model idle since `now_ns` expires under a keep-alive of `session_s`."""
    if math.isinf(session_s):
        return now_ns + MAX_DURATION_NS  # Go stores forever as MaxInt64: ~year 2318
    return now_ns + int(session_s * 1e9)
