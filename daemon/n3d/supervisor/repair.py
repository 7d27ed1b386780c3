"""The staged repair: from each round of checks, the next step. Pure: no I/O, no clock.

DESIGN.md "Liveness": the failing or wedged model's ``runner`` first, then
``serve``, then the lifecycle's backoff and ``fatal`` as for any restart. What
calls for which step, first match wins:

1. The scheduler check failed: ``failures_before_restart`` failed `/api/ps` in a
   row restart serve. A model wedged (stuck unloading) has its runner stopped at
   once: that is what ends a stuck unload (#7779, #7606).
2. A model ``hung`` (no answer, its runner idle, nothing else working): its runner
   is stopped at once; the CPU evidence over the probe window was the confirmation,
   so confirming adds nothing. ``failed`` (Ollama answered an error) and
   ``waiting`` (its runner idle while another worked) are not proof alone: the
   runner is stopped once either has been seen ``failures_before_restart`` rounds
   in a row.
3. After a runner step, if the model is not back within ``probe_timeout``
   (:meth:`RepairPolicy.runner_outcome`), serve is restarted.
4. A model ``slow`` (by its probe's rate, or by traffic's: the same rule):
   serve is restarted once when ``restart_when_slow``, never twice within
   :data:`SLOW_RESTART_EVERY_S`; otherwise (or if still slow) the server stays
   degraded with the rates and a suggestion.
5. ``unknown`` (no answer, no runner to look at) is reported, never repaired.

A server n3d does not own is never repaired (``can_repair`` False): the same
findings give a ``degrade`` step, which only says what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["SLOW_RESTART_EVERY_S", "SLOW_SUGGESTION", "Findings", "RepairPolicy", "Slow", "Step"]

SLOW_RESTART_EVERY_S = 3600.0
SLOW_SUGGESTION = (
    "the GPU may have been lost (after suspend/resume): see docs/troubleshooting.md, "
    '"slow after suspend"'
)


@dataclass(frozen=True, slots=True)
class Slow:
    """A model's slow rate and the baseline of its kind (``source``: probe or traffic)."""

    model: str
    tokens_per_second: float
    baseline_tps: float
    source: str = "probe"

    def describe(self) -> str:
        return f"{self.tokens_per_second:.1f} tok/s, baseline {self.baseline_tps:.1f}"

    def whose(self) -> str:
        """``(model)``, or ``(model, from traffic)`` for proxied requests' rates."""
        return f"({self.model})" if self.source == "probe" else f"({self.model}, from traffic)"


@dataclass(frozen=True, slots=True)
class Findings:
    """One round: ``scheduler_error`` when `/api/ps` failed; models ``wedged`` (with
    how long past expiry, s); the verdict of each model probed in this round
    (``verdicts``) and why (``details``); then what stands from the newest check of
    every loaded model: why each failing one fails (``failing``), the slow ones."""

    scheduler_error: str | None = None
    wedged: Mapping[str, float] = field(default_factory=dict)
    verdicts: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)
    failing: Mapping[str, str] = field(default_factory=dict)
    slow: Sequence[Slow] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """What to do: ``runner`` (stop ``model``'s runner), ``serve`` (restart it),
    ``degrade`` (say what is wrong, repair nothing), ``clear`` (all well) or ``keep``
    (this round could judge nothing: an unreadable `/api/ps`)."""

    stage: Literal["runner", "serve", "degrade", "clear", "keep"]
    reason: str = ""
    model: str | None = None
    slow: bool = False


class RepairPolicy:
    """Remembers what one server's repairs need across rounds: failed scheduler checks
    in a row, each model's repeated soft failures, when a slow restart last happened.

    ``failures_before_restart`` and ``restart_when_slow`` may change (a reload).
    Times are the caller's monotonic seconds.
    """

    def __init__(self, failures_before_restart: int, restart_when_slow: bool) -> None:
        self.failures_before_restart = failures_before_restart
        self.restart_when_slow = restart_when_slow
        self.scheduler_failures = 0
        self._strikes: dict[str, int] = {}
        self._slow_restart_at: float | None = None  # survives serve restarts: "once an hour"

    def new_server(self) -> None:
        """A new serve runs: counts of the old one's failures no longer apply."""
        self.scheduler_failures = 0
        self._strikes.clear()

    def decide(self, f: Findings, now: float, *, can_repair: bool) -> Step:
        """The step for this round's findings (the module docstring's order)."""
        step = self._scheduler(f, can_repair)
        if step is None:
            step = self._inference(f, can_repair)
        if step is None:
            step = self._slow(f, now, can_repair)
        return step or Step("clear")

    def runner_outcome(self, model: str, back: bool, why: str) -> Step:
        """After a runner step: ``clear`` when ``model`` is ``back``, else serve."""
        self._strikes.pop(model, None)
        if back:
            return Step("clear", f"{model} answers again after its runner was replaced")
        return Step("serve", f"{why}; replacing its runner did not help", model)

    def _scheduler(self, f: Findings, can_repair: bool) -> Step | None:
        if f.scheduler_error is None:
            self.scheduler_failures = 0
            if not f.wedged:
                return None
            model, past = next(iter(f.wedged.items()))
            why = f"{model} is stuck unloading (expires_at {past:.0f}s ago, its runner idle)"
            return Step("runner", why, model) if can_repair else Step("degrade", why)
        self.scheduler_failures += 1
        n = self.scheduler_failures
        why = f"scheduler check failed: {f.scheduler_error}"
        if can_repair and n >= self.failures_before_restart:
            return Step("serve", f"{why} ({n} in a row)")
        return Step("degrade", why)

    def _inference(self, f: Findings, can_repair: bool) -> Step | None:
        for model, verdict in f.verdicts.items():
            why = f"inference on {model}: {f.details.get(model, verdict)}"
            if verdict == "hung":
                return Step("runner", why, model) if can_repair else Step("degrade", why)
            if verdict not in ("failed", "waiting"):
                self._strikes.pop(model, None)  # answered, busy, or cannot tell: no strike
                continue
            strikes = self._strikes[model] = self._strikes.get(model, 0) + 1
            if can_repair and strikes >= self.failures_before_restart:
                return Step("runner", f"{why} ({strikes} checks in a row)", model)
        for model, detail in f.failing.items():
            repaired = "" if can_repair else "; not n3d's server, so not repaired"
            return Step("degrade", f"inference on {model}: {detail}{repaired}", model)
        return None

    def _slow(self, f: Findings, now: float, can_repair: bool) -> Step | None:
        if not f.slow:
            return None
        slowest = min(f.slow, key=lambda s: s.tokens_per_second / s.baseline_tps)
        why = f"inference slow: {slowest.describe()} {slowest.whose()}"
        last = self._slow_restart_at
        if (
            can_repair
            and self.restart_when_slow
            and (last is None or now - last >= SLOW_RESTART_EVERY_S)
        ):
            self._slow_restart_at = now
            return Step("serve", why, slowest.model, slow=True)
        return Step("degrade", f"{why}; {SLOW_SUGGESTION}", slowest.model, slow=True)
