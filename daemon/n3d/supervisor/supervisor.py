"""The driver of the state machine (n3d.state): its public face, commands, the control loop.

One control loop owns the lifecycle. Commands (:meth:`Supervisor.start`, ``stop``,
``restart``) set what is wanted and cancel the current lifecycle; its cleanup
(stop the child, bounded) runs shielded, then the loop acts on the new wish. So
concurrent commands are never refused: the last one wins, and each caller gets the
state once things have settled. Every transition is logged as ``server.state``.

What one lifecycle does (adopt, start, supervise, back off, give up) is in
:mod:`n3d.supervisor.lifecycle`; a server n3d did not start, in
:mod:`n3d.supervisor.foreign`. They see the supervisor through a
:class:`~n3d.supervisor.context.Context`: the store, the health checker, the
running settings, never the supervisor itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import structlog
from anyio.abc import TaskStatus

from n3d.errors import NotManaged
from n3d.state import ServerState, Snapshot, StateStore, Transition, can_transition
from n3d.supervisor.context import Context, Version, Wanted
from n3d.supervisor.health import HealthChecker, Probe
from n3d.supervisor.lifecycle import OURS, Lifecycle
from n3d.supervisor.liveness import Liveness
from n3d.supervisor.orphans import stop_orphans
from n3d.supervisor.probe import OllamaView
from n3d.supervisor.process import OllamaProcess, Resources

if TYPE_CHECKING:
    from n3d.config import Settings

__all__ = ["Supervisor"]

log = structlog.get_logger("n3d.supervisor")
S = ServerState
_SETTLING = (S.STARTING, S.STOPPING)
# States in which no server of ours is answering: a cached health answer is stale.
_NO_SERVER = frozenset({ServerState.STOPPED, ServerState.BACKOFF, ServerState.FATAL})
# `status` reuses a measurement of the child's resources this young (seconds).
RESOURCES_MAX_AGE_S = 1.0


class Supervisor:
    """Owns (or watches) one Ollama server as the config's ``[server].mode`` says.

    ``probe`` is the `HEAD /` heartbeat at the base URL and ``version`` asks the
    server's version (the daemon passes its probing client's; a test may pass a
    fake probe and no version). ``ollama`` is what liveness asks Ollama (the
    probing client again; None: no liveness checks) and ``warm()`` names the models
    kept warm, the only ones it probes. ``command`` defaults to
    ``settings.server.command``; ``runtime_dir`` is where the pid file lives (None:
    no pid file, no orphan handling), named ``pid_file_name`` (``ollama.pid``; with
    several servers, :func:`~n3d.supervisor.pidfile.pid_file_name`); ``environ`` is
    the base of the child's environment.
    ``before_planned_stop`` is awaited before a planned stop or restart of a server
    that answers (the proxy's drain, which bounds itself); the supervisor knows
    nothing else of it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        probe: Probe,
        version: Version | None = None,
        ollama: OllamaView | None = None,
        warm: Callable[[], Collection[str]] = frozenset,
        command: Sequence[str] | None = None,
        runtime_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        pid_file_name: str = "ollama.pid",
        before_planned_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.before_planned_stop = before_planned_stop
        self.command = tuple(command or settings.server.command)
        self.pid_file = runtime_dir / pid_file_name if runtime_dir else None
        self.store = StateStore(
            Snapshot(mode=settings.server.mode, base_url=settings.ollama.base_url)
        )
        self.health = HealthChecker(
            probe,
            interval_s=settings.ollama.health_check_interval_s,
            timeout_s=settings.server.health_timeout_s,
        )
        self.liveness = Liveness(ollama, settings=lambda: self.settings, warm=warm)
        self._wanted = Wanted(True, f"mode {settings.server.mode}: n3d starts the server")
        self._scope: anyio.CancelScope | None = None
        self._changed: anyio.Event | None = None
        # The last resources_async measurement: (child, monotonic time, result).
        self._resources: tuple[OllamaProcess, float, Resources] | None = None
        context = Context(
            self.store,
            self.health,
            settings=lambda: self.settings,
            command=lambda: self.command,
            pid_file=self.pid_file,
            version=version,
            liveness=self.liveness if ollama is not None else None,
            before_planned_stop=self._drain,
        )
        self._lifecycle = Lifecycle(
            context, self._wanted, dict(os.environ if environ is None else environ)
        )

    # -- public -------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self.store.snapshot

    @property
    def process(self) -> OllamaProcess | None:
        """Our child while one runs (the lifecycle owns it)."""
        return self._lifecycle.process

    def resources(self) -> Resources:
        """Our server plus its runners: RSS bytes, CPU percent, process count (0 if none).

        Blocks while it scans /proc: on the event loop, use :meth:`resources_async`.
        """
        return self.process.resources() if self.process is not None else Resources(0, 0.0, 0)

    async def resources_async(self) -> Resources:
        """:meth:`resources`, measured in a worker thread (the /proc scan blocks).

        A measurement of the same child younger than ``RESOURCES_MAX_AGE_S`` is
        reused. Each scan reads every process on the machine (psutil finds the
        children through a parent map of all of /proc: ~1 ms with 70 processes, and
        growing with their number), and `status` may be polled many times a second;
        a CPU percentage over less than a clock tick (10 ms) means nothing anyway.
        """
        child = self.process
        if child is None:
            return Resources(0, 0.0, 0)
        last = self._resources
        fresh = last is not None and time.monotonic() - last[1] < RESOURCES_MAX_AGE_S
        if last is not None and fresh and last[0] is child:
            return last[2]
        usage = await anyio.to_thread.run_sync(child.resources)
        self._resources = (child, time.monotonic(), usage)
        return usage

    def apply_settings(self, settings: Settings) -> None:
        """Run with reloaded settings: timings and policy now, command and env at next start.

        ``settings`` is a reload plan's ``effective`` (:mod:`n3d.config.reload`), which
        already keeps ``server.mode`` and ``ollama.base_url`` as they run: the probe
        client and the child's OLLAMA_HOST must agree on the address, and the mode
        decides the whole lifecycle, so both wait for a restart of n3d.
        """
        self.settings = settings
        self.health.interval_s = settings.ollama.health_check_interval_s
        self.health.timeout_s = settings.server.health_timeout_s

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Supervise until cancelled; ready once orphans are handled and commands work."""
        self._changed = anyio.Event()
        unsubscribe = self.store.subscribe(self._on_change)
        try:
            if self.pid_file is not None and self.settings.server.mode != "external":
                await stop_orphans(
                    self.pid_file, stop_timeout_s=self.settings.server.stop_timeout_s
                )
            task_status.started()
            await self._control_loop()
        finally:
            self._settle("n3d is shutting down")
            unsubscribe()

    async def start(self) -> Snapshot:
        """`server.start`: start (or clear ``fatal``); a no-op when up or adopted."""
        self._require_managed("start")
        if self.snapshot.state in (S.RUNNING, S.DEGRADED, S.STARTING, S.EXTERNAL):
            return self.snapshot
        self._lifecycle.forget_failures()
        return await self._command(True, "server.start")

    async def stop(self) -> Snapshot:
        """`server.stop`: stop our server and stay stopped until `server.start`."""
        self._require_managed("stop")
        await self._drain()
        return await self._command(False, "server.stop")

    async def restart(self) -> Snapshot:
        """`server.restart`: stop our server (bounded) and start it again at once."""
        self._require_managed("restart")
        self._lifecycle.forget_failures()
        await self._drain()
        return await self._command(True, "server.restart")

    async def shutdown(self) -> Snapshot:
        """Stop our server (bounded: stop_timeout plus verification) and stay stopped."""
        return await self._command(False, "n3d is shutting down")

    async def wait_for(self, predicate: Callable[[Snapshot], bool]) -> Snapshot:
        """Wait until ``predicate(snapshot)`` holds (callers bound it with a timeout)."""
        while True:
            changed = self._changed
            if predicate(self.snapshot):
                return self.snapshot
            assert changed is not None, "run() has not started"
            await changed.wait()

    # -- commands -----------------------------------------------------------------

    async def _drain(self) -> None:
        """Before a planned stop: the hook, when a server of ours answers requests."""
        if self.before_planned_stop is not None and self.snapshot.state in (S.RUNNING, S.DEGRADED):
            await self.before_planned_stop()

    def _require_managed(self, what: str) -> None:
        s = self.snapshot
        adopted = s.state in (S.EXTERNAL, S.UNREACHABLE) and not s.owned
        if self.settings.server.mode == "external" or (adopted and what != "start"):
            raise NotManaged(
                f"Cannot {what} the Ollama server: n3d did not start it "
                f"(mode {self.settings.server.mode!r}, state {s.state.value}).",
                base_url=self.settings.ollama.base_url,
                suggestion="Stop or start it where it was started, or set "
                '[server] mode = "managed" so n3d owns it.',
            )

    async def _command(self, up: bool, reason: str) -> Snapshot:
        wanted = self._wanted
        wanted.up, wanted.reason = up, reason
        wanted.gen += 1
        gen = wanted.gen
        log.info("server.command", command=reason)
        if self._scope is not None:
            self._scope.cancel()
        s = self.settings.server
        with anyio.move_on_after(s.start_timeout_s + s.stop_timeout_s + 5.0):
            await self.wait_for(lambda snap: wanted.applied >= gen and snap.state not in _SETTLING)
        return self.snapshot

    # -- the loop -----------------------------------------------------------------

    async def _control_loop(self) -> None:
        while True:
            with anyio.CancelScope() as scope:
                self._scope = scope
                self._wanted.applied = self._wanted.gen
                self._poke()  # a command that changes nothing must still return
                if self._wanted.up:
                    await self._lifecycle.run()
                else:
                    self._settle(self._wanted.reason)
                await anyio.sleep_forever()  # fatal, or stopped: until a command
            self._scope = None

    def _settle(self, reason: str) -> None:
        """Nothing of ours runs any more: say so (stopped), unless we were never up.

        Called only once the lifecycle (and so the child's stop) is over. A state
        that still claims a child goes through stopping, the edge a stop takes.
        """
        if self.snapshot.state in OURS:
            self.transition(S.STOPPING, reason)
        if self.snapshot.state is not S.STOPPED and can_transition(self.snapshot.state, S.STOPPED):
            self.transition(S.STOPPED, reason, pid=None, next_start_in_s=None)

    # -- transitions --------------------------------------------------------------

    def transition(self, target: ServerState, reason: str, **changes: object) -> None:
        """Take one edge of the state machine (as the lifecycle does through its context)."""
        self.store.transition(target, reason, **changes)

    def _on_change(self, edge: Transition | None, snapshot: Snapshot) -> None:
        if edge is not None:
            log.info(
                "server.state",
                **{"from": edge.source.value, "to": edge.target.value},
                reason=edge.reason,
                pid=snapshot.pid,
            )
            if edge.target in _NO_SERVER:
                # A cached "ok" describes a server that is gone: the next ask probes.
                self.health.forget()
        self._poke()

    def _poke(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        if changed is not None:
            changed.set()
