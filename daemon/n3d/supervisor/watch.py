"""The watching phases of our own child: its start-up, then its run.

Each phase races the child's exit (noticed at once, by waiting on it) against
timed `HEAD /` probes (and, while running, liveness: :mod:`n3d.supervisor.liveness`),
and reports how the phase ended. Transitions between
running and degraded happen here; the decisions about what comes next stay in
:mod:`n3d.supervisor.lifecycle`. A server n3d did not start is watched by
:mod:`n3d.supervisor.foreign`.
"""

from __future__ import annotations

import time

import anyio

from n3d.metrics import metric
from n3d.state import ServerState
from n3d.supervisor.context import Context
from n3d.supervisor.process import ExitStatus, OllamaProcess

__all__ = ["recheck_interval", "wait_ready", "watch_running"]

S = ServerState
_READY_POLL_S = 0.1  # Ollama's own CLI polls every 0.5 s; a refused connect costs nothing


def recheck_interval(interval_s: float, timeout_s: float) -> float:
    """Seconds between checks once one has failed (the `degraded` cadence).

    A failed check is confirmed sooner than the next routine one: two probe
    timeouts apart (at least 1 s), never slower than ``interval_s``. With the
    defaults (30 s, 5 s) a hung server is restarted after 30 + 2 × 10 + 5 s at
    most instead of 95 s, and a lone failure still costs only a few probes.
    """
    return min(interval_s, max(1.0, 2.0 * timeout_s))


def _exit_text(what: str, status: ExitStatus, child: OllamaProcess) -> str:
    text = f"{what} ({status.describe()})"
    return f"{text}: {child.last_stderr}" if child.last_stderr else text


async def wait_ready(ctx: Context, child: OllamaProcess) -> str | None:
    """None once `HEAD /` answers within start_timeout; else why the start failed."""
    timeout_s = ctx.settings().server.start_timeout_s
    poll_s = min(_READY_POLL_S, ctx.health.interval_s)
    failure: str | None = f"no answer to HEAD / within start_timeout ({timeout_s:g}s)"
    with anyio.move_on_after(timeout_s):
        async with anyio.create_task_group() as tg:

            async def exited() -> None:
                nonlocal failure
                failure = _exit_text("exited during start", await child.wait(), child)
                tg.cancel_scope.cancel()

            async def answered() -> None:
                nonlocal failure
                while True:
                    if (await ctx.health.check(force=True)).ok:
                        break
                    await anyio.sleep(poll_s)
                failure = None
                tg.cancel_scope.cancel()

            tg.start_soon(exited)
            tg.start_soon(answered)
    return failure


async def watch_running(ctx: Context, child: OllamaProcess) -> tuple[str, float]:
    """Watch a running child until it exits, fails too many checks in a row, or
    liveness asks for serve to be restarted (:mod:`n3d.supervisor.liveness`).

    Returns why the run ended and how long it was continuously healthy (seconds;
    the longest healthy stretch). A hung child is moved to ``stopping`` here.
    Running and degraded follow both the `HEAD /` checks and liveness: degraded
    while either reports a problem, running again once neither does.
    """
    server = ctx.settings().server
    healthy_since: float | None = time.monotonic()
    longest = 0.0
    ended: tuple[str, float] = ("", 0.0)
    problems: dict[str, str | None] = {"http": None, "liveness": None}

    def healthy_for() -> float:
        now = time.monotonic()
        return max(longest, now - healthy_since if healthy_since is not None else 0.0)

    def settle(source: str, problem: str | None, recovered: str) -> None:
        """Record ``source``'s problem (None: none) and take the edge it calls for."""
        nonlocal healthy_since, longest
        problems[source] = problem
        state = ctx.snapshot.state
        current = problems["http"] or problems["liveness"]
        if current is not None and state is S.RUNNING:
            longest, healthy_since = healthy_for(), None
            ctx.transition(S.DEGRADED, current)
        elif current is not None and state is S.DEGRADED and ctx.snapshot.reason != current:
            ctx.store.update(reason=current)  # still degraded, for a newer reason
        elif current is None and state is S.DEGRADED:
            healthy_since = time.monotonic()
            ctx.transition(S.RUNNING, recovered)

    def restart(reason: str) -> None:
        nonlocal ended
        # Once only: the HTTP checks and liveness may both find serve hung, and a task
        # whose await had already completed runs on to here before the cancel lands.
        if tg.cancel_scope.cancel_called:
            return
        ended = (reason, healthy_for())
        ctx.transition(S.STOPPING, f"{reason}: killing it to restart")
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:

        async def exited() -> None:
            nonlocal ended
            status = await child.wait()
            if not tg.cancel_scope.cancel_called:  # a restart of ours already said why
                ended = (_exit_text("exited unexpectedly", status, child), healthy_for())
            tg.cancel_scope.cancel()

        async def checks() -> None:
            failures = 0
            next_at = anyio.current_time()
            while True:
                # Fixed rate: a slow probe does not stretch the detection time.
                step = ctx.health.interval_s
                if failures:
                    step = recheck_interval(step, server.health_timeout_s)
                next_at = max(next_at + step, anyio.current_time())
                await anyio.sleep_until(next_at)
                report = await ctx.health.check(force=True)
                # In a thread: the /proc scan would block the event loop.
                usage = await anyio.to_thread.run_sync(child.resources)
                metric("ollama.process.rss_bytes", usage.rss_bytes, "By", pid=child.pid)
                if report.ok:
                    failures = 0
                    settle("http", None, "health check passed again")
                    continue
                failures += 1
                error = report.result.error or "failed"
                settle("http", f"health check failed: {error}", "")
                if failures >= server.failures_before_restart:
                    restart(f"{failures} health checks failed in a row (last: {error})")
                    return

        async def inference() -> None:
            def problem(reason: str | None) -> None:
                settle("liveness", reason, "inference checks pass again")

            assert ctx.liveness is not None
            step = await ctx.liveness.watch(child.pid, problem)
            if step.slow and ctx.before_planned_stop is not None:
                # A slow server still answers: what it is serving may finish first
                # (the proxy's drain, bounded by drain_timeout), as for n3ctl restart.
                await ctx.before_planned_stop()
            restart(step.reason)

        tg.start_soon(exited)
        tg.start_soon(checks)
        if ctx.liveness is not None:
            tg.start_soon(inference)
    return ended
