"""One running `ollama serve` child: notice its exit, measure it, stop its group.

* The child runs in a new session (:func:`~n3d.supervisor.spawn.open_ollama`
  starts it), so its pid is also its process-group id and Ollama's runners (which
  share serve's group, research/ollama.md §3) can be killed with one ``killpg``
  even after serve itself died.
* Exit is noticed by awaiting the child (a waitpid), not by polling.
* :meth:`OllamaProcess.stop`: SIGTERM to serve, wait ``timeout_s``, SIGKILL to the
  whole group, then verify with psutil that no member of the group survives. A
  serve that does not exit even then (stuck in the kernel, e.g. a GPU driver) is
  logged as ``ollama.unkillable`` and no longer waited for: the stop stays bounded.
* :meth:`OllamaProcess.resources`: serve and its runners, RSS and CPU.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

import anyio
import psutil
import structlog
from anyio.abc import Process

from n3d.supervisor.groups import (
    INSTANCE_VAR,
    VERIFY_S,
    descendant_pids,
    group_members,
    kill_group,
)

__all__ = [
    "INSTANCE_VAR",
    "ExitStatus",
    "OllamaProcess",
    "Resources",
    "StopReport",
    "group_members",  # re-exported: process groups are part of this module's story
    "kill_group",
]

log = structlog.get_logger("n3d.supervisor.process")


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How the child ended: ``returncode`` as Python reports it (negative = signal)."""

    returncode: int

    @property
    def signal_name(self) -> str | None:
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return str(-self.returncode)

    def describe(self) -> str:
        """``exit code 1`` or ``signal SIGKILL``."""
        name = self.signal_name
        return f"signal {name}" if name else f"exit code {self.returncode}"


@dataclass(frozen=True, slots=True)
class StopReport:
    """What a stop did: the exit, whether SIGKILL was needed, how long it took (s)."""

    exit: ExitStatus | None
    killed: bool  # serve ignored SIGTERM for `timeout_s` and was SIGKILLed
    survivors: int  # group members still alive after verification (should be 0)
    duration_s: float


@dataclass(frozen=True, slots=True)
class Resources:
    """The process tree (serve plus runners): resident memory in bytes, CPU percent."""

    rss_bytes: int
    cpu_percent: float
    processes: int


class OllamaProcess:
    """A running child; created by :func:`~n3d.supervisor.spawn.open_ollama`, which
    guarantees its stop."""

    def __init__(self, process: Process, command: Sequence[str], instance: str = "") -> None:
        self._process = process
        self.command = tuple(command)
        self.instance = instance  # the N3D_INSTANCE marker this spawn carries
        self.pid = process.pid
        self.pgid = process.pid  # new session: the leader's pid is the group id
        self.started_at = time.monotonic()
        self.exited = anyio.Event()
        self.exit_status: ExitStatus | None = None
        # Shielded (see watch_exit); stop() cancels it only for a process that even
        # SIGKILL did not end, so that waiting for it cannot hold n3d's shutdown.
        self._exit_watch = anyio.CancelScope(shield=True)
        self._stop_lock = anyio.Lock()
        self._stop_report: StopReport | None = None
        self._tree_lock = threading.Lock()  # resources() runs in worker threads
        try:
            self._ps: psutil.Process | None = psutil.Process(self.pid)
            self.create_time = self._ps.create_time()
        except psutil.Error:  # already gone: it exited before we could look
            self._ps, self.create_time = None, 0.0
        self._tree: dict[int, psutil.Process] = {}
        self.last_stderr: str | None = None  # the newest stderr line, for error messages

    def note_stderr(self, line: str) -> None:
        self.last_stderr = line

    @property
    def stop_report(self) -> StopReport | None:
        """What the (first) stop did; None until a stop has finished."""
        return self._stop_report

    @property
    def unkillable(self) -> bool:
        """Stopped, yet serve never exited: it was abandoned (``ollama.unkillable``)."""
        return self._stop_report is not None and not self.exited.is_set()

    async def watch_exit(self) -> None:
        """Record the exit when it comes (:func:`~n3d.supervisor.spawn.open_ollama` runs it)."""
        # Shielded: a cancelled supervisor must still learn of the exit while it
        # stops the child. open_ollama always SIGKILLs the group, so this ends,
        # unless the kernel holds serve (D state); then stop() cancels the scope.
        with self._exit_watch:
            returncode = await self._process.wait()
            self.exit_status = ExitStatus(returncode)
            self.exited.set()

    async def wait(self) -> ExitStatus:
        """Wait until serve exits; returns how it ended."""
        await self.exited.wait()
        assert self.exit_status is not None
        return self.exit_status

    def send_signal(self, signum: signal.Signals) -> None:
        """Signal serve alone (not its group); a no-op once it has exited.

        ``os.kill``, not the process object's ``send_signal``: that one first polls
        (a ``waitpid``), and a serve that died a moment before (between stop()'s
        SIGTERM and SIGCONT) would be reaped there, in place of the exit watcher,
        whose own wait then finds no child and reports exit code 255 instead of
        how serve ended. Only the exit watcher reaps, so the pid stays serve's (a
        zombie at worst, which ignores signals) until ``exited`` is set, bar the
        instant between its reaping and that.
        """
        if not self.exited.is_set():
            with suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    async def stop(self, timeout_s: float) -> StopReport:
        """SIGTERM (then SIGCONT) serve, wait ``timeout_s``, SIGKILL the group, verify it is empty.

        Idempotent and safe to call concurrently: later callers get the first report.
        Bounded by ``timeout_s`` plus at most ``2 × VERIFY_S`` of verification. If
        serve has not exited by then, it is logged as ``ollama.unkillable`` and no
        longer waited for (its exit stays unknown; init reaps it eventually).
        """
        async with self._stop_lock:
            if self._stop_report is not None:
                return self._stop_report
            began = time.monotonic()
            killed = False
            if not self.exited.is_set():
                # Ollama kills its runners itself on the first SIGTERM; later
                # signals are swallowed, which is why escalation is SIGKILL.
                self.send_signal(signal.SIGTERM)
                # A stopped serve (SIGSTOP, a debugger let go of) would sit on the
                # SIGTERM until SIGKILL; SIGCONT lets it act now, as systemd does.
                self.send_signal(signal.SIGCONT)
                with anyio.move_on_after(timeout_s):
                    await self.exited.wait()
                killed = not self.exited.is_set()
            # Always: runners of a crashed serve outlive it in the same group.
            survivors = await kill_group(self.pgid)
            with anyio.move_on_after(VERIFY_S):
                await self.exited.wait()
            report = StopReport(self.exit_status, killed, survivors, time.monotonic() - began)
            self._stop_report = report
            if killed:
                log.warning("ollama.killed", pid=self.pid, after_s=timeout_s)
            if survivors:
                log.error("ollama.group_survivors", pgid=self.pgid, count=survivors)
            if not self.exited.is_set():
                log.error(
                    "ollama.unkillable",
                    pid=self.pid,
                    after_s=round(report.duration_s, 3),
                    detail="serve did not exit after SIGKILL (stuck in the kernel?); "
                    "no longer waiting for it",
                )
                self._exit_watch.cancel()
            return report

    def _descendants(self) -> list[psutil.Process]:
        """serve's descendants, as psutil objects (known ones reused); lock held."""
        assert self._ps is not None
        pids = descendant_pids(self._ps.pid)
        if pids is None:
            return list(self._ps.children(recursive=True))
        procs = []
        for pid in pids:
            known = self._tree.get(pid)
            if known is None:
                try:
                    known = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    continue  # ended between the listing and now
            procs.append(known)
        return procs

    def resources(self) -> Resources:
        """RSS and CPU of serve and its descendants (CPU since the previous call).

        Blocking (it scans /proc): call it in a worker thread, e.g.
        ``await anyio.to_thread.run_sync(child.resources)``. Thread-safe; a child
        that exits meanwhile counts as nothing rather than raising.
        """
        with self._tree_lock:
            if self._ps is None or self.exited.is_set():
                return Resources(0, 0.0, 0)
            try:
                procs = [self._ps, *self._descendants()]
            except (psutil.Error, OSError):  # gone (or going) while we looked
                return Resources(0, 0.0, 0)
            # Keep the same psutil objects between calls: cpu_percent needs a baseline.
            tree = {p.pid: self._tree.get(p.pid, p) for p in procs}
            self._tree = tree
            rss, cpu, count = 0, 0.0, 0
            for proc in tree.values():
                try:
                    rss += proc.memory_info().rss
                    cpu += proc.cpu_percent(None)
                    count += 1
                except (psutil.Error, OSError):
                    continue
            return Resources(rss, cpu, count)
