"""Ollama's runners among serve's descendants: which serves a model, its CPU time, its stop.

Each loaded model has a runner process: ``ollama runner --model <blob> --port N``
(Ollama ≈0.4 to 0.2x), upstream ``llama-server --model <blob> ...`` at HEAD
(research/ollama.md §3). :func:`find_runners` lists serve's descendants that carry
a ``--model`` argument (``-m`` too, as llama-server spells it), with their CPU time;
liveness matches one to a model through the blobs `/api/show` names
(:func:`runner_for`). A runner is identified by pid *and* creation time, so a pid
the kernel reused is never taken for it (:func:`stop_runner` checks both).

The CPU-progress rule (:func:`progressed`) is how "queued behind work" is told from
"hung": a runner that generates spends CPU (the decode loop, graph launches, a
CUDA sync that spins), one deadlocked or never reached spends none. A window counts
as progress when the runner gained at least 2 % of one core over it (0.4 s of CPU
over the default 20 s probe): well above an idle runner's noise (a blocked Go or
C++ server wakes for microseconds), well below any decoding (a token costs
milliseconds of CPU even with the GPU doing the math), and never less than two
clock ticks (20 ms), under which /proc cannot tell.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass

import anyio
import psutil
import structlog

from n3d.supervisor.groups import VERIFY_S, descendant_pids

__all__ = [
    "MIN_CPU_S",
    "MIN_CPU_SHARE",
    "Runner",
    "cpu_gained",
    "find_runners",
    "model_path",
    "progressed",
    "runner_for",
    "stop_runner",
]

log = structlog.get_logger("n3d.supervisor.runners")

MIN_CPU_SHARE = 0.02  # of one core, over the window: see the module docstring
MIN_CPU_S = 0.02  # two clock ticks: less than this /proc cannot tell from nothing
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Runner:
    """One runner process as seen at one look: ``cpu_s`` is user + system seconds."""

    pid: int
    create_time: float
    model_path: str
    cpu_s: float

    def same_process(self, other: Runner | None) -> bool:
        return other is not None and (other.pid, other.create_time) == (
            self.pid,
            self.create_time,
        )


def model_path(cmdline: Sequence[str]) -> str | None:
    """The ``--model`` argument of a command line, else its ``-m`` one, or None.

    ``--model`` first: ``python -m package --model X`` (the simulator's runner) has
    both, and only the long one names the model.
    """
    for i, arg in enumerate(cmdline):
        if arg == "--model" and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.startswith("--model="):
            return arg.partition("=")[2]
    for i, arg in enumerate(cmdline[1:], start=1):
        if arg == "-m" and i + 1 < len(cmdline):
            return cmdline[i + 1]
    return None


def _children(serve_pid: int) -> list[int]:
    pids = descendant_pids(serve_pid)
    if pids is not None:
        return pids
    with suppress(psutil.Error):
        return [p.pid for p in psutil.Process(serve_pid).children(recursive=True)]
    return []


def find_runners(serve_pid: int) -> dict[str, Runner]:
    """serve's live descendants that carry ``--model``, by that path; blocking (/proc).

    A process that ends while we look, a zombie or one we may not read is left out.
    """
    found: dict[str, Runner] = {}
    for pid in _children(serve_pid):
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                path = model_path(proc.cmdline())
                if path is None:
                    continue
                times = proc.cpu_times()
                runner = Runner(pid, proc.create_time(), path, times.user + times.system)
        except (psutil.Error, OSError):
            continue
        known = found.get(path)
        if known is None or runner.create_time > known.create_time:
            found[path] = runner  # two for one blob: the newer is the one serving it
    return found


def runner_for(runners: Mapping[str, Runner], blobs: Collection[str]) -> Runner | None:
    """The runner whose ``--model`` is one of ``blobs`` (the paths `/api/show` names).

    The same path first; else the same file name (a blob is ``sha256-<hex>``, unique
    however the models directory is reached: a symlink, a bind mount).
    """
    for blob in blobs:
        if blob in runners:
            return runners[blob]
    names = {os.path.basename(b) for b in blobs if os.path.basename(b)}
    for path, runner in runners.items():
        if os.path.basename(path) in names:
            return runner
    return None


def cpu_gained(before: Runner | None, after: Runner | None) -> float | None:
    """CPU seconds a model's runner did between two looks; None when there is none now.

    A different process after (the model was loaded again) did all its CPU inside
    the window: loading is work too.
    """
    if after is None:
        return None
    if before is None or not after.same_process(before):
        return after.cpu_s
    return max(0.0, after.cpu_s - before.cpu_s)


def progressed(cpu_s: float | None, window_s: float) -> bool:
    """The CPU-progress rule: at least 2 % of one core over the window (and 20 ms)."""
    return cpu_s is not None and cpu_s >= max(MIN_CPU_S, MIN_CPU_SHARE * window_s)


def others_gained(
    before: Mapping[str, Runner], after: Mapping[str, Runner], skip: Iterable[str]
) -> float:
    """CPU seconds every other runner did between two looks (new ones count whole)."""
    skipped = set(skip)
    total = 0.0
    for path, runner in after.items():
        if path not in skipped:
            total += cpu_gained(before.get(path), runner) or 0.0
    return total


def _alive(runner: Runner) -> bool:
    """Still that process (same creation time) and not a zombie."""
    try:
        proc = psutil.Process(runner.pid)
        return proc.create_time() == runner.create_time and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False


def _signal(runner: Runner, signum: signal.Signals) -> None:
    if _alive(runner):  # never a pid the kernel gave to someone else since the look
        with suppress(ProcessLookupError, PermissionError):
            os.kill(runner.pid, signum)


async def _gone_within(runner: Runner, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while await anyio.to_thread.run_sync(_alive, runner):
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(_POLL_S)
    return True


async def stop_runner(runner: Runner, timeout_s: float) -> bool:
    """SIGTERM the runner, SIGKILL it after ``timeout_s``; True once it is gone.

    Only that process: serve and the other runners are not touched. Serve notices
    its runner's end and loads the model again on its next request (Ollama #7606).
    """
    _signal(runner, signal.SIGTERM)
    if await _gone_within(runner, timeout_s):
        return True
    log.warning("runner.killed", pid=runner.pid, model_path=runner.model_path, after_s=timeout_s)
    _signal(runner, signal.SIGKILL)
    return await _gone_within(runner, VERIFY_S)
