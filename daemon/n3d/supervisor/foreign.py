"""A server n3d did not start: adopt it (mode auto) and watch it (external, unreachable).

n3d never stops such a server; it only says whether it answers. Mode external
watches until cancelled; mode auto adopts a server that already answers at the
base URL and, once it stops answering, lets the lifecycle start our own.
"""

from __future__ import annotations

import anyio

from n3d.state import ServerState, can_transition
from n3d.supervisor.context import Context

__all__ = ["adopt", "watch_foreign"]

S = ServerState


async def adopt(ctx: Context) -> bool:
    """Mode auto: if a server already answers at the base URL, watch it instead."""
    if ctx.snapshot.state is S.EXTERNAL:
        return True  # adopted just before a command cancelled the watch: keep it
    if not can_transition(ctx.snapshot.state, S.EXTERNAL):
        return False  # e.g. right after stopping our own: the port is ours to reuse
    if not (await ctx.health.check(force=True)).ok:
        return False
    ctx.transition(
        S.EXTERNAL,
        "a server already answers at the base URL: adopted, not started by n3d",
        owned=False,
        pid=None,
    )
    await ctx.learn_version()
    return True


async def watch_foreign(ctx: Context, *, give_up_after: int | None) -> None:
    """Watch a server n3d did not start: ``external`` while it answers, else unreachable.

    Returns after ``give_up_after`` failed checks in a row (mode auto: time to start
    our own); with None it watches until cancelled (mode external). Liveness checks
    it meanwhile, for the report only: n3d repairs only servers it owns.
    """
    async with anyio.create_task_group() as tg:
        if ctx.liveness is not None:
            tg.start_soon(ctx.liveness.watch, None, _report_only)
        await _watch_answers(ctx, give_up_after)
        tg.cancel_scope.cancel()


def _report_only(problem: str | None) -> None:
    """A foreign server's liveness problems show in `health`, not in its state."""


async def _watch_answers(ctx: Context, give_up_after: int | None) -> None:
    failures = 0
    if ctx.snapshot.state is S.EXTERNAL:
        await anyio.sleep(ctx.health.interval_s)  # adoption itself was a fresh check
    while True:
        report = await ctx.health.check(force=True)
        state = ctx.snapshot.state
        if report.ok:
            failures = 0
            if state in (S.STOPPED, S.UNREACHABLE):
                ctx.transition(
                    S.EXTERNAL,
                    "answers at the base URL (not started by n3d)",
                    owned=False,
                    pid=None,
                    last_error=None,
                )
                await ctx.learn_version()
        else:
            failures += 1
            error = report.result.error or "failed"
            if state in (S.STOPPED, S.EXTERNAL):
                ctx.transition(S.UNREACHABLE, f"no answer: {error}", last_error=error)
            if give_up_after is not None and failures >= give_up_after:
                return
        await anyio.sleep(ctx.health.interval_s)
