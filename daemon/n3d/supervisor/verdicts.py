"""Judging one check from its evidence: pure functions, no I/O, no clock of their own.

- :func:`judge_timeout`: a probe that did not answer within ``probe_timeout``. Ollama
  gives no queue or busy signal (research/users.md §1; `/api/ps`'s ``expires_at``
  is frozen while a model is busy), so the model's runner is the witness: if it
  worked during the window (:func:`~n3d.supervisor.runners.progressed`), the probe
  was queued behind real requests (``busy``, a sign of life); if it did nothing while
  another runner worked, Ollama's scheduler may be waiting on that one (``waiting``:
  a failure only once repeated); if nothing worked at all, the model is ``hung``,
  and that evidence over the window is the confirmation. Without its runner to look
  at the answer is ``unknown``, never repaired on a timeout alone.
- :func:`judge_rate`: an answer's decode rate against the model's baseline.
- :func:`wedged`: a loaded model whose ``expires_at`` passed ``stuck_unload_after``
  ago and whose runner is idle is stuck unloading ("Stopping..." in
  `ollama ps`); a busy model past its keep-alive shows an old ``expires_at`` too,
  and is not.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from n3d.supervisor.runners import progressed

__all__ = ["judge_rate", "judge_timeout", "past_expiry_s", "wedged"]


def judge_timeout(own_cpu_s: float | None, others_cpu_s: float, window_s: float) -> str:
    """``busy``, ``waiting``, ``hung`` or ``unknown`` for a probe that timed out.

    ``own_cpu_s`` is what the model's runner did in the window, None when no runner
    of it was found (a server n3d did not start, a runner that could not be matched):
    then busy cannot be told from hung, and the answer is ``unknown``.
    ``others_cpu_s`` is what every other runner did.
    """
    if own_cpu_s is None:
        return "unknown"
    if progressed(own_cpu_s, window_s):
        return "busy"
    if progressed(others_cpu_s, window_s):
        return "waiting"
    # Its runner idle, and nothing else worked: nothing it could be waiting behind.
    return "hung"


def judge_rate(
    tokens_per_second: float | None, baseline_tps: float | None, slow_factor: float
) -> str:
    """``slow`` when below ``baseline / slow_factor`` (0 = never), else ``ok``."""
    if not slow_factor or tokens_per_second is None or baseline_tps is None:
        return "ok"
    return "slow" if tokens_per_second < baseline_tps / slow_factor else "ok"


def past_expiry_s(expires: datetime | None, now: datetime) -> float:
    """Seconds since ``expires_at`` (0 when in the future or unknown)."""
    if expires is None:
        return 0.0
    return max(0.0, (now - expires).total_seconds())


def wedged(
    expires: datetime | None,
    now: datetime,
    stuck_unload_after_s: float,
    *,
    runner_cpu_s: float | None,
    window_s: float,
) -> bool:
    """Stuck unloading: past ``expires_at`` by more than ``stuck_unload_after_s``, and
    its runner did no work over the last ``window_s``. ``runner_cpu_s`` None (no
    runner found) is never wedged: a long generation could not be told from a wedge."""
    if expires is None or now - expires <= timedelta(seconds=stuck_unload_after_s):
        return False
    return runner_cpu_s is not None and not progressed(runner_cpu_s, window_s)
