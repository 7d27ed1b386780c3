"""One round's inference checks: per loaded model, evidence of output or a probe, a verdict.

For each model `/api/ps` lists (:meth:`InferenceCheck.check`):

- output younger than ``probe_interval`` (traffic, or a probe that answered), or a
  probe sent less than ``probe_interval`` ago: nothing is sent, the newest check
  stands (at most one probe per warm model per interval); traffic newer than it
  makes a ``traffic`` check, its rate (the median of the last requests' rates,
  :meth:`~n3d.supervisor.evidence.ModelBook.traffic_rate`) judged against the
  traffic baseline as a probe's is against the probe baseline;
- a model n3d does not keep warm: ``unchecked`` (a probe would restart its
  keep-alive timer and keep it loaded for good);
- ``[liveness] inference_probe = false``: ``unchecked``;
- else one probe, bounded by ``probe_timeout``, with a look at the runners right
  before and right after a timeout, so the CPU window is the probe's own.

:class:`Parts` is what the checks (and the runner repair) use of
:class:`~n3d.supervisor.liveness.Liveness`: no back-pointer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from n3d.metrics import metric
from n3d.ollama.types import LoadedModel
from n3d.supervisor.evidence import Baselines, ModelBook, ModelCheck
from n3d.supervisor.probe import FactsCache, ModelFacts, OllamaView, ProbeOutcome, run_probe
from n3d.supervisor.repair import Slow
from n3d.supervisor.runners import Runner, cpu_gained, others_gained, runner_for
from n3d.supervisor.verdicts import judge_rate, judge_timeout

if TYPE_CHECKING:
    from n3d.config import Settings

__all__ = ["FAILING", "InferenceCheck", "Parts", "describe_timeout"]

Runners = Callable[[], Awaitable[dict[str, Runner] | None]]


@dataclass(frozen=True, slots=True)
class Parts:
    """What the inference checks and runner repairs may use: Ollama, the model book,
    the probe and traffic baselines, the facts cache, a look at our server's runners
    (None: not ours), which models are warm, and the monotonic clock."""

    api: OllamaView
    book: ModelBook
    baselines: Baselines
    traffic_baselines: Baselines
    facts: FactsCache
    runners: Runners
    is_warm: Callable[[str], bool]
    clock: Callable[[], float]


def describe_timeout(verdict: str, timeout_s: float, own_cpu_s: float | None) -> str:
    """Why a probe that did not answer within ``timeout_s`` got ``verdict``."""
    head = f"no answer within {timeout_s:g}s"
    if verdict == "busy":
        return f"{head}, but its runner worked ({own_cpu_s:.2f}s of CPU): queued behind requests"
    if verdict == "waiting":
        return f"{head}; its runner idle while another runner worked"
    if verdict == "hung":
        cpu = f"{own_cpu_s:.2f}s" if own_cpu_s is not None else "no"
        return f"{head} and its runner did no work ({cpu} of CPU)"
    return f"{head}; its runner was not found, so busy cannot be told from hung"


FAILING = ("hung", "failed", "waiting", "unknown")


@dataclass(slots=True)
class InferenceCheck:
    """The inference checks of one round. ``verdicts`` and ``details`` hold this
    round's probes only (what may call for a repair); :meth:`standing` the newest
    check of every loaded model (what the server's state reports)."""

    parts: Parts
    settings: Settings
    round_at: float  # monotonic: when the round was due
    verdicts: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    async def check(self, model: LoadedModel) -> None:
        p, live = self.parts, self.settings.liveness
        name, now = model.name, p.clock()
        warm = p.is_warm(name)
        previous = p.book.check(name)
        output = p.book.last_output(name)
        if (
            output is not None
            and output[1] == "traffic"
            and now - output[0] < live.probe_interval_s
        ):
            if previous is None or previous.checked_at is None or output[0] > previous.checked_at:
                p.book.record(self._traffic(name, warm, now))
            return  # alive recently: no probe
        # Probes are stamped with the round's start: rounds come at a fixed rate, so a
        # model is probed every probe_interval exactly, never more often.
        sent = p.book.last_probe(name)
        # A hair of slack for floating-point sums of due times (30.000000000004 - 30).
        if sent is not None and self.round_at - sent < live.probe_interval_s - 1e-6 and previous:
            return  # probed less than an interval ago: that check stands
        if not warm or not live.inference_probe:
            p.book.record(ModelCheck(name, "unchecked", None, warm=warm))
            return
        await self._probe(model)

    def _traffic(self, name: str, warm: bool, now: float) -> ModelCheck:
        """The check traffic makes: alive, and slow when its rate is (none yet: ok)."""
        p = self.parts
        rate = p.book.traffic_rate(name)
        tps = rate[0] if rate is not None else None
        baseline = p.traffic_baselines.get(name)
        verdict = judge_rate(tps, baseline, self.settings.liveness.slow_factor)
        return ModelCheck(
            name,
            verdict,
            True,
            "traffic",
            tokens_per_second=tps,
            baseline_tps=baseline,
            slow=verdict == "slow",
            warm=warm,
            checked_at=now,
        )

    def standing(self, loaded: list[str]) -> tuple[dict[str, str], list[Slow]]:
        """Why each loaded model's newest check fails (by model), and the slow ones."""
        failing: dict[str, str] = {}
        slow: list[Slow] = []
        for check in self.parts.book.checks(loaded):
            if check.state in FAILING:
                failing[check.model] = check.error or check.state
            if check.slow and check.tokens_per_second and check.baseline_tps:
                rates = (check.tokens_per_second, check.baseline_tps)
                slow.append(Slow(check.model, *rates, check.source or "probe"))
        return failing, slow

    async def _probe(self, model: LoadedModel) -> None:
        p, s = self.parts, self.settings
        name, timeout_s = model.name, s.liveness.probe_timeout_s
        facts = await p.facts.get(p.api, model, s.server.health_timeout_s) or ModelFacts((), False)
        before = await p.runners()
        began = p.clock()
        p.book.probe_sent(name, self.round_at)
        outcome = await run_probe(
            p.api, name, embed=facts.embed_only, timeout_s=timeout_s, clock=p.clock
        )
        if outcome.answered:
            verdict = self._answered(name, outcome, began)
        elif outcome.timed_out:
            verdict = await self._timed_out(name, facts, before, began, timeout_s)
        else:
            verdict = self._error(name, outcome)
        metric(
            "ollama.inference.probe_duration", outcome.latency_s, "s", model=name, outcome=verdict
        )

    def _answered(self, name: str, outcome: ProbeOutcome, began: float) -> str:
        p = self.parts
        p.book.probed(name, began)
        tps, baseline = outcome.tokens_per_second, p.baselines.get(name)
        verdict = judge_rate(tps, baseline, self.settings.liveness.slow_factor)
        if tps is not None:
            metric("ollama.inference.tokens_per_second", tps, "{token}/s", model=name)
            if verdict == "ok":
                baseline = p.baselines.learn(name, tps)
        check = ModelCheck(
            name,
            verdict,
            True,
            "probe",
            outcome.latency_s,
            tps,
            baseline,
            slow=verdict == "slow",
            checked_at=p.clock(),
        )
        p.book.record(check)
        self.verdicts[name] = verdict
        return verdict

    async def _timed_out(
        self,
        name: str,
        facts: ModelFacts,
        before: dict[str, Runner] | None,
        began: float,
        timeout_s: float,
    ) -> str:
        p = self.parts
        after = await p.runners()
        window = p.clock() - began
        own_after = runner_for(after, facts.blobs) if after is not None else None
        own: float | None = None
        others = 0.0
        if own_after is not None and before is not None and after is not None:
            own = cpu_gained(runner_for(before, facts.blobs), own_after)
            others = others_gained(before, after, skip=[own_after.model_path])
        verdict = judge_timeout(own, others, window)
        detail = describe_timeout(verdict, timeout_s, own)
        busy = verdict == "busy"  # queued behind real work: a sign of life, not a failure
        check = ModelCheck(
            name,
            verdict,
            busy,
            "probe",
            window,
            baseline_tps=p.baselines.get(name),
            checked_at=p.clock(),
            error=None if busy else detail,
        )
        p.book.record(check)
        self.verdicts[name], self.details[name] = verdict, detail
        return verdict

    def _error(self, name: str, outcome: ProbeOutcome) -> str:
        p = self.parts
        if outcome.error_kind == "model_not_found":
            # Unloaded or deleted since /api/ps answered: nothing to judge.
            p.book.record(ModelCheck(name, "unchecked", None, checked_at=p.clock()))
            return "gone"
        detail = f"Ollama answered an error: {outcome.error}"
        check = ModelCheck(
            name,
            "failed",
            False,
            "probe",
            outcome.latency_s,
            baseline_tps=p.baselines.get(name),
            checked_at=p.clock(),
            error=detail,
        )
        p.book.record(check)
        self.verdicts[name], self.details[name] = "failed", detail
        return "failed"
