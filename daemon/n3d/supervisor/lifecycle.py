"""One lifecycle: what runs while a server is wanted, until a command cancels it.

Per mode: watch a foreign server (external), adopt one that answers (auto), or
start our own. Each start attempt spawns the child, waits until it is ready,
supervises its run and, when it ends, asks the restart policy what comes next:
back off and start again, or give up (fatal). A spawn that fails is a failed
start like any other (:mod:`n3d.supervisor.spawn` says whether retrying can
help; when it cannot, ``fatal`` at once), and so is a command that daemonized
itself (:mod:`n3d.supervisor.escape`, always ``fatal``). A command or shutdown
cancels the lifecycle from :mod:`n3d.supervisor.supervisor`; the cancel edges
below make sure no state is left that claims a child we no longer have.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import anyio
import structlog

from n3d.errors import render_error
from n3d.metrics import metric
from n3d.state import ServerState
from n3d.supervisor.context import Context, Wanted
from n3d.supervisor.escape import daemonized
from n3d.supervisor.foreign import adopt, watch_foreign
from n3d.supervisor.pidfile import PidRecord, remove_pid_file, write_pid_file
from n3d.supervisor.ports import endpoint_of, port_holder
from n3d.supervisor.process import OllamaProcess
from n3d.supervisor.restart import Decision, FailureRecord, RestartPolicy
from n3d.supervisor.spawn import SpawnFailed, SpawnFailure, child_environment, open_ollama
from n3d.supervisor.watch import wait_ready, watch_running

__all__ = ["OURS", "Lifecycle"]

log = structlog.get_logger("n3d.supervisor")
S = ServerState
# States that claim a child of ours exists: only `_attempt` may leave the lifecycle
# in one of them, and never when it is cancelled (it moves on to stopping first).
OURS = (S.STARTING, S.RUNNING, S.DEGRADED)


class Lifecycle:
    """The supervisor's lifecycle, and what outlives one start attempt.

    Holds the failure record the restart policy reads, how many children were
    spawned, and :attr:`process`, our child while one runs (the supervisor reads
    it; only the lifecycle sets it). ``ctx`` is what it may use of the supervisor;
    ``wanted`` is the last command (shared with the control loop); ``environ`` is
    the base of the child's environment.
    """

    def __init__(self, ctx: Context, wanted: Wanted, environ: Mapping[str, str]) -> None:
        self._ctx = ctx
        self._wanted = wanted
        self._environ = environ
        self._record = FailureRecord()
        self._spawned = 0
        self.process: OllamaProcess | None = None

    def forget_failures(self) -> None:
        """`server.start`/`server.restart`: earlier failed starts no longer count."""
        self._record = self._record.healthy()

    async def run(self) -> None:
        """Until cancelled, or until the restart policy gives up (then ``fatal``)."""
        ctx = self._ctx
        mode = ctx.settings().server.mode
        if mode == "external":
            await watch_foreign(ctx, give_up_after=None)
            return
        reason = self._wanted.reason  # the first start says why (a command, or n3d starting)
        while True:
            if mode == "auto" and await adopt(ctx):
                give_up_after = ctx.settings().server.failures_before_restart
                await watch_foreign(ctx, give_up_after=give_up_after)
                reason = "the adopted server stopped answering: starting our own"
            decision = await self._attempt(reason)
            if decision.give_up:
                ctx.transition(S.FATAL, decision.reason, next_start_in_s=None)
                log.error("server.fatal", reason=decision.reason,
                          suggestion="fix the cause, then `n3ctl start`")
                return
            ctx.transition(S.BACKOFF, decision.reason, next_start_in_s=decision.delay_s)
            await anyio.sleep(decision.delay_s)
            reason = f"backoff of {decision.delay_s:g}s over: starting again"

    async def _attempt(self, reason: str) -> Decision:
        """One start and, if it comes up, its whole run; the decision when it ended."""
        ctx = self._ctx
        policy = ctx.policy()
        if self._spawned:
            metric("ollama.server.restarts", 1, "{restart}")
        self._spawned += 1
        ctx.transition(
            S.STARTING,
            reason,  # a command, n3d starting, a backoff that ended, a lost adopted server
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
        ctx = self._ctx
        settings = ctx.settings()
        server = settings.server
        endpoint = endpoint_of(settings.ollama.base_url)
        holder = await port_holder(endpoint)
        if holder is not None:
            error = (
                f"port {endpoint.hostport} is already in use by {holder}; n3d cannot "
                f"start its own server there (mode {server.mode!r})"
            )
            log.error("server.port_in_use", holder=holder, port=endpoint.port, error=error)
            ctx.store.update(port_holder=holder, last_error=error)
            return self._record_failure(policy, error)
        env = child_environment(self._environ, ollama_host=endpoint.hostport, extra=server.env)
        ctx.health.forget()
        try:
            async with open_ollama(
                ctx.command(), env, stop_timeout_s=server.stop_timeout_s
            ) as child:
                self.process = child
                if ctx.pid_file is not None:
                    write_pid_file(ctx.pid_file, PidRecord.of(child))  # never raises
                ctx.store.update(pid=child.pid, owned=True)
                try:
                    return await self._supervise(child, policy)
                except anyio.get_cancelled_exc_class():
                    self._stopping_on_cancel()  # now, while the child is being stopped
                    raise
        except SpawnFailed as exc:
            return self._spawn_failed(policy, exc.failure)

    def _spawn_failed(self, policy: RestartPolicy, failure: SpawnFailure) -> Decision:
        """The one place a spawn that failed becomes a failed start, or ``fatal``."""
        ctx = self._ctx
        ctx.store.update(
            last_error=render_error(
                failure.message,
                base_url=ctx.settings().ollama.base_url,
                suggestion=failure.suggestion,
            )
        )
        log.error(
            # The missing program keeps its own event, which alerts may match on.
            "server.not_installed" if failure.not_installed else "server.spawn_failed",
            error=failure.message,
            errno=failure.errno_name,
            retryable=failure.retryable,
        )
        if failure.retryable:
            return self._record_failure(policy, failure.message)
        # Retrying cannot help until someone fixes the command: say so once, go
        # fatal, and let `server.start` (n3ctl start) try again afterwards.
        return Decision(True, 0.0, 1, f"{failure.message}; {failure.fix}, then run: n3ctl start")

    def _stopping_on_cancel(self) -> None:
        """A command or shutdown cancelled the attempt: our child is (being) stopped."""
        ctx = self._ctx
        if ctx.snapshot.state in OURS:
            commanded = self._wanted.pending
            ctx.transition(S.STOPPING, self._wanted.reason if commanded else "cancelled")

    async def _supervise(self, child: OllamaProcess, policy: RestartPolicy) -> Decision:
        ctx = self._ctx
        failure = await wait_ready(ctx, child)
        if failure is not None:
            # A backgrounded server may still be coming up: give it the start's time.
            escaped = await self._daemonized(child, wait_s=ctx.settings().server.start_timeout_s)
            if escaped is not None:
                return escaped
            ctx.store.update(last_error=failure)
            await child.stop(ctx.settings().server.stop_timeout_s)
            return self._record_failure(policy, failure)
        up_s = time.monotonic() - child.started_at
        ctx.transition(S.RUNNING, f"answered HEAD / after {up_s:.2f}s", last_error=None)
        metric("ollama.server.started", 1, "{start}", pid=child.pid)
        await ctx.learn_version()
        reason, healthy_for_s = await watch_running(ctx, child)
        escaped = await self._daemonized(child)
        if escaped is not None:
            return escaped
        if ctx.snapshot.state is not S.STOPPING:
            ctx.store.update(last_error=reason)
        await child.stop(ctx.settings().server.stop_timeout_s)
        self._record, decision = self._record.run_ended(policy, time.monotonic(), healthy_for_s)
        return Decision(
            decision.give_up, decision.delay_s, decision.failures, f"{reason}; {decision.reason}"
        )

    async def _daemonized(self, child: OllamaProcess, wait_s: float = 0.0) -> Decision | None:
        """``fatal`` if the child exited 0 and left a server behind (it daemonized)."""
        ctx = self._ctx
        reason = await daemonized(child, self._answers, wait_s=wait_s)
        if reason is None:
            return None
        ctx.store.update(last_error=reason)
        await child.stop(ctx.settings().server.stop_timeout_s)
        return Decision(True, 0.0, 1, f"{reason}; then run: n3ctl start")

    async def _answers(self) -> bool:
        return (await self._ctx.health.check(force=True)).ok

    def _record_failure(self, policy: RestartPolicy, why: str) -> Decision:
        self._record, decision = self._record.failed_start(policy, time.monotonic())
        return Decision(
            decision.give_up, decision.delay_s, decision.failures, f"{why}; {decision.reason}"
        )

    def _after_exit(self) -> None:
        ctx = self._ctx
        child, self.process = self.process, None
        if child is None:
            return
        if child.unkillable:
            # Keep ollama.pid: if it ever exits the kernel, the next n3d stops it.
            last_exit: str | None = "did not exit after SIGKILL (abandoned)"
        else:
            if ctx.pid_file is not None:
                remove_pid_file(ctx.pid_file)
            last_exit = child.exit_status.describe() if child.exit_status else None
        ctx.store.update(pid=None, last_exit=last_exit)
        metric("ollama.server.stopped", 1, "{stop}", pid=child.pid, exit=last_exit or "?")
