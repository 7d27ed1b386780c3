"""The driver of the state machine (n3d.state): modes, starts, checks, restarts, commands.

One control loop owns the lifecycle. Commands (:meth:`Supervisor.start`, ``stop``,
``restart``) set what is wanted and cancel the current lifecycle; its cleanup
(stop the child, bounded) runs shielded, then the loop acts on the new wish. So
concurrent commands are never refused: the last one wins, and each caller gets the
state once things have settled. Every transition is logged as ``server.state``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import structlog
from anyio.abc import TaskStatus

from n3d.errors import NotManaged, OllamaNotInstalled
from n3d.logs import metric
from n3d.state import ServerState, Snapshot, StateStore, Transition, can_transition
from n3d.supervisor.health import HealthChecker, Probe
from n3d.supervisor.orphans import PidRecord, remove_pid_file, stop_orphans, write_pid_file
from n3d.supervisor.ports import endpoint_of, port_holder
from n3d.supervisor.process import OllamaProcess, Resources, child_environment, open_ollama
from n3d.supervisor.restart import Decision, FailureRecord, RestartPolicy
from n3d.supervisor.watch import wait_ready, watch_foreign, watch_running

if TYPE_CHECKING:
    from n3d.config import Settings

__all__ = ["Supervisor"]

log = structlog.get_logger("n3d.supervisor")
S = ServerState
_SETTLING = (S.STARTING, S.STOPPING)
# States that claim a child of ours exists: only `_attempt` may leave the lifecycle
# in one of them, and never when it is cancelled (it moves on to stopping first).
_OURS = (S.STARTING, S.RUNNING, S.DEGRADED)


# States in which no server of ours is answering: a cached health answer is stale.
_NO_SERVER = frozenset({ServerState.STOPPED, ServerState.BACKOFF, ServerState.FATAL})


class Supervisor:
    """Owns (or watches) one Ollama server as the config's ``[server].mode`` says.

    ``command`` defaults to ``settings.server.command``; ``runtime_dir`` is where
    ``ollama.pid`` lives (None: no pid file, no orphan handling); ``probe`` replaces
    the HTTP heartbeat (tests); ``environ`` is the base of the child's environment.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        command: Sequence[str] | None = None,
        runtime_dir: Path | None = None,
        probe: Probe | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.command = tuple(command or settings.server.command)
        self.pid_file = runtime_dir / "ollama.pid" if runtime_dir else None
        self._environ = dict(os.environ if environ is None else environ)
        self.store = StateStore(
            Snapshot(mode=settings.server.mode, base_url=settings.ollama.base_url)
        )
        self._probe = probe
        self._version: Callable[[], Awaitable[str]] | None = None
        self.health = HealthChecker(
            self._heartbeat,
            interval_s=settings.ollama.health_check_interval_s,
            timeout_s=settings.server.health_timeout_s,
        )
        self._record = FailureRecord()
        self._want_up = True
        self._reason = f"mode {settings.server.mode}: n3d starts the server"
        self._scope: anyio.CancelScope | None = None
        self._gen = self._applied = 0
        self._changed: anyio.Event | None = None
        self._spawned = 0
        self.process: OllamaProcess | None = None

    # -- public -------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self.store.snapshot

    @property
    def policy(self) -> RestartPolicy:
        r = self.settings.restart
        return RestartPolicy(
            r.backoff_initial_s,
            r.backoff_max_s,
            r.max_failures,
            r.window_s,
            stable_after_s=self.settings.ollama.health_check_interval_s,
        )

    def resources(self) -> Resources:
        """Our server plus its runners: RSS bytes, CPU percent, process count (0 if none).

        Blocks while it scans /proc: on the event loop, use :meth:`resources_async`.
        """
        return self.process.resources() if self.process is not None else Resources(0, 0.0, 0)

    async def resources_async(self) -> Resources:
        """:meth:`resources`, measured in a worker thread (the /proc scan blocks)."""
        child = self.process
        if child is None:
            return Resources(0, 0.0, 0)
        return await anyio.to_thread.run_sync(child.resources)

    def apply_settings(self, settings: Settings) -> tuple[str, ...]:
        """Take new settings (SIGHUP): timings and policy now, the command at next start.

        ``server.mode`` and ``ollama.base_url`` keep their running values until n3d
        restarts; returns the names of those that differ in ``settings`` (the caller
        logs them as needing a restart, with its own keys such as ``socket.path``).
        """
        # The probe client and the child's OLLAMA_HOST must agree on the base URL,
        # and the mode decides the whole lifecycle: both wait for a restart of n3d.
        old = self.settings
        kept = tuple(
            name
            for name, running, wanted in (
                ("server.mode", old.server.mode, settings.server.mode),
                ("ollama.base_url", old.ollama.base_url, settings.ollama.base_url),
            )
            if running != wanted
        )
        self.settings = dataclasses.replace(
            settings,
            server=dataclasses.replace(settings.server, mode=old.server.mode),
            ollama=dataclasses.replace(settings.ollama, base_url=old.ollama.base_url),
        )
        self.health.interval_s = settings.ollama.health_check_interval_s
        self.health.timeout_s = settings.server.health_timeout_s
        return kept

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Supervise until cancelled; ready once orphans are handled and commands work."""
        self._changed = anyio.Event()
        unsubscribe = self.store.subscribe(self._on_change)
        try:
            async with AsyncExitStack() as stack:
                if self._probe is None:
                    from n3d.ollama.client import OllamaClient

                    client = await stack.enter_async_context(
                        OllamaClient(
                            self.settings.ollama.base_url,
                            timeout_s=self.settings.server.health_timeout_s,
                        )
                    )
                    self._probe, self._version = client.heartbeat, client.version
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
        self._record = self._record.healthy()
        return await self._command(True, "server.start")

    async def stop(self) -> Snapshot:
        """`server.stop`: stop our server and stay stopped until `server.start`."""
        self._require_managed("stop")
        return await self._command(False, "server.stop")

    async def restart(self) -> Snapshot:
        """`server.restart`: stop our server (bounded) and start it again at once."""
        self._require_managed("restart")
        self._record = self._record.healthy()
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
        self._want_up, self._reason = up, reason
        self._gen += 1
        gen = self._gen
        log.info("server.command", command=reason)
        if self._scope is not None:
            self._scope.cancel()
        s = self.settings.server
        with anyio.move_on_after(s.start_timeout_s + s.stop_timeout_s + 5.0):
            await self.wait_for(lambda snap: self._applied >= gen and snap.state not in _SETTLING)
        return self.snapshot

    # -- the loop -----------------------------------------------------------------

    async def _control_loop(self) -> None:
        while True:
            with anyio.CancelScope() as scope:
                self._scope = scope
                self._applied = self._gen
                self._poke()  # a command that changes nothing must still return
                if self._want_up:
                    await self._lifecycle()
                else:
                    self._settle(self._reason)
                await anyio.sleep_forever()  # fatal, or stopped: until a command
            self._scope = None

    def _settle(self, reason: str) -> None:
        """Nothing of ours runs any more: say so (stopped), unless we were never up.

        Called only once the lifecycle (and so the child's stop) is over. A state
        that still claims a child goes through stopping, the edge a stop takes.
        """
        if self.snapshot.state in _OURS:
            self.transition(S.STOPPING, reason)
        if self.snapshot.state is not S.STOPPED and can_transition(self.snapshot.state, S.STOPPED):
            self.transition(S.STOPPED, reason, pid=None, next_start_in_s=None)

    async def _lifecycle(self) -> None:
        mode = self.settings.server.mode
        if mode == "external":
            await watch_foreign(self, give_up_after=None)
            return
        reason = self._reason  # the first start says why (a command, or n3d starting)
        while True:
            if mode == "auto" and await self._adopt():
                await watch_foreign(self, give_up_after=self.settings.server
                                    .failures_before_restart)
                reason = "the adopted server stopped answering: starting our own"
            decision = await self._attempt(reason)
            if decision.give_up:
                self.transition(S.FATAL, decision.reason, next_start_in_s=None)
                log.error("server.fatal", reason=decision.reason,
                          suggestion="fix the cause, then `n3ctl start`")
                return
            self.transition(S.BACKOFF, decision.reason, next_start_in_s=decision.delay_s)
            await anyio.sleep(decision.delay_s)
            reason = f"backoff of {decision.delay_s:g}s over: starting again"

    async def _adopt(self) -> bool:
        """Mode auto: if a server already answers at the base URL, watch it instead."""
        if self.snapshot.state is S.EXTERNAL:
            return True  # adopted just before a command cancelled the watch: keep it
        if not can_transition(self.snapshot.state, S.EXTERNAL):
            return False  # e.g. right after stopping our own: the port is ours to reuse
        if not (await self.health.check(force=True)).ok:
            return False
        self.transition(S.EXTERNAL, "a server already answers at the base URL: adopted, "
                        "not started by n3d", owned=False, pid=None)
        await self.learn_version()
        return True

    async def _attempt(self, reason: str) -> Decision:
        """One start and, if it comes up, its whole run; the decision when it ended."""
        policy = self.policy
        if self._spawned:
            metric("ollama.server.restarts", 1, "{restart}")
        self._spawned += 1
        self.transition(
            S.STARTING,
            self._reason if self._spawned == 1 else "restart",
            restarts=self._spawned - 1,
            next_start_in_s=None,
            port_holder=None,
        )
        try:
            return await self._start_and_run(policy)
        except anyio.get_cancelled_exc_class():
            # Also when the cancel lands after _supervise returned, in the child's
            # cleanup (its stop, the output drain's grace): never leave a state that
            # claims a child we no longer have; stop, start and restart go on from here.
            self._stopping_on_cancel()
            raise
        finally:
            self._after_exit()

    async def _start_and_run(self, policy: RestartPolicy) -> Decision:
        server = self.settings.server
        endpoint = endpoint_of(self.settings.ollama.base_url)
        holder = await port_holder(endpoint)
        if holder is not None:
            error = (
                f"port {endpoint.hostport} is already in use by {holder}; n3d cannot "
                f"start its own server there (mode {server.mode!r})"
            )
            log.error("server.port_in_use", holder=holder, port=endpoint.port, error=error)
            self.store.update(port_holder=holder, last_error=error)
            return self._record_failure(policy, error)
        env = child_environment(self._environ, ollama_host=endpoint.hostport, extra=server.env)
        self.health.forget()
        try:
            async with open_ollama(
                self.command,
                env,
                stop_timeout_s=server.stop_timeout_s,
                base_url=self.settings.ollama.base_url,
            ) as child:
                self.process = child
                if self.pid_file is not None:
                    write_pid_file(self.pid_file, PidRecord.of(child))
                self.store.update(pid=child.pid, owned=True)
                try:
                    return await self._supervise(child, policy)
                except anyio.get_cancelled_exc_class():
                    self._stopping_on_cancel()  # now, while the child is being stopped
                    raise
        except OllamaNotInstalled as exc:
            # Retrying cannot help until someone installs it: say so once, go fatal,
            # and let `server.start` (n3ctl start) try again afterwards.
            self.store.update(last_error=str(exc))
            log.error("server.not_installed", error=str(exc))
            return Decision(
                True, 0.0, 1, f"{exc.message}; install it, then run: n3ctl start"
            )

    def _stopping_on_cancel(self) -> None:
        """A command or shutdown cancelled the attempt: our child is (being) stopped."""
        if self.snapshot.state in _OURS:
            commanded = self._gen != self._applied
            self.transition(S.STOPPING, self._reason if commanded else "cancelled")

    async def _supervise(self, child: OllamaProcess, policy: RestartPolicy) -> Decision:
        failure = await wait_ready(self, child)
        if failure is not None:
            self.store.update(last_error=failure)
            await child.stop(self.settings.server.stop_timeout_s)
            return self._record_failure(policy, failure)
        up_s = time.monotonic() - child.started_at
        self.transition(S.RUNNING, f"answered HEAD / after {up_s:.2f}s", last_error=None)
        metric("ollama.server.started", 1, "{start}", pid=child.pid)
        await self.learn_version()
        reason, healthy_for_s = await watch_running(self, child)
        if self.snapshot.state is not S.STOPPING:
            self.store.update(last_error=reason)
        await child.stop(self.settings.server.stop_timeout_s)
        self._record, decision = self._record.run_ended(policy, time.monotonic(), healthy_for_s)
        return Decision(
            decision.give_up, decision.delay_s, decision.failures, f"{reason}; {decision.reason}"
        )

    def _record_failure(self, policy: RestartPolicy, why: str) -> Decision:
        self._record, decision = self._record.failed_start(policy, time.monotonic())
        return Decision(
            decision.give_up, decision.delay_s, decision.failures, f"{why}; {decision.reason}"
        )

    def _after_exit(self) -> None:
        child, self.process = self.process, None
        if child is None:
            return
        if child.unkillable:
            # Keep ollama.pid: if it ever exits the kernel, the next n3d stops it.
            last_exit: str | None = "did not exit after SIGKILL (abandoned)"
        else:
            if self.pid_file is not None:
                remove_pid_file(self.pid_file)
            last_exit = child.exit_status.describe() if child.exit_status else None
        self.store.update(pid=None, last_exit=last_exit)
        metric("ollama.server.stopped", 1, "{stop}", pid=child.pid, exit=last_exit or "?")

    async def learn_version(self) -> None:
        """Ask the server its version for status (best effort, bounded)."""
        if self._version is None:
            return
        with anyio.move_on_after(self.settings.server.health_timeout_s):
            try:
                version = await self._version()
            except Exception:  # noqa: BLE001 - the version is a nicety, never a failure
                return
            self.store.update(version=version)

    async def _heartbeat(self, timeout_s: float) -> float:
        assert self._probe is not None, "run() sets the probe"
        return await self._probe(timeout_s)

    # -- transitions --------------------------------------------------------------

    def transition(self, target: ServerState, reason: str, **changes: object) -> None:
        """Take one edge of the state machine (used by the watchers in watch.py)."""
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
