"""Liveness that reaches inference: the scheduler and inference checks, and repairs.

`HEAD /` (:mod:`n3d.supervisor.health`) proves only that serve answers HTTP. One
:class:`Liveness` per server, for the daemon's whole life (a model's baseline rate
is n3d's memory and survives serve restarts), runs rounds while a server is up
(:meth:`Liveness.watch`), every ``min(health_check_interval, probe_interval)``
seconds (at least 1 s), and sooner after a failed one:

1. **scheduler**: `GET /api/ps` within ``health_timeout``; the runners among serve's
   descendants are looked at (:mod:`~n3d.supervisor.runners`), and a model past its
   ``expires_at`` by ``stuck_unload_after`` whose runner did no work since the
   previous look is wedged (:func:`~n3d.supervisor.verdicts.wedged`).
2. **inference**, per loaded model: output younger than ``probe_interval`` (traffic,
   :class:`~n3d.supervisor.evidence.TrafficEvidence`, or the last probe) is enough,
   traffic's decode rates judged against the traffic baseline (``slow``);
   otherwise a **warm** model gets one probe (:mod:`~n3d.supervisor.probe`), one at
   a time; a model that is not warm is never probed (a probe would restart its
   keep-alive timer and pin it). A probe that times out is judged by its runner's
   CPU (:func:`~n3d.supervisor.verdicts.judge_timeout`); an answer's decode rate
   against the model's probe baseline (``slow``).
3. **repair** (:mod:`~n3d.supervisor.repair` decides): a ``runner`` step is carried
   out by :mod:`~n3d.supervisor.runner_repair`; a ``serve`` step ends
   :meth:`Liveness.watch` with its reason, and the lifecycle restarts serve.

Each step taken is a ``repair`` log event (``stage``, ``model``, ``reason``), an
``ollama.repairs`` count (tag ``stage``) and a call of every ``listeners`` entry
(the daemon publishes it on the ``repair`` topic and has keep-warm look at once).

Long because a round is one sequence whose steps share one look at the runners and
one clock; what stands alone (verdicts, the repair policy, the runner step, the
probe, the evidence book) is already in the modules named above.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import structlog

from n3d.errors import OllamaError, UnexpectedResponse
from n3d.metrics import metric
from n3d.ollama.types import LoadedModel
from n3d.supervisor.evidence import Baselines, ModelBook, ModelCheck, model_key
from n3d.supervisor.inference import InferenceCheck, Parts
from n3d.supervisor.probe import FactsCache, OllamaView
from n3d.supervisor.repair import Findings, RepairPolicy, Step
from n3d.supervisor.runner_repair import repair_runner
from n3d.supervisor.runners import Runner, cpu_gained, find_runners, runner_for
from n3d.supervisor.verdicts import past_expiry_s, wedged

if TYPE_CHECKING:
    from n3d.config import Settings

__all__ = ["Liveness", "LivenessReport", "Problem", "RepairEvent", "SchedulerCheck"]

log = structlog.get_logger("n3d.supervisor")

Problem = Callable[[str | None], None]
"""``problem(reason)``: what keeps the server degraded now; None: nothing."""

_MIN_ROUND_S = 1.0  # /api/ps and a /proc scan per round: never a busy loop
_SLACK_S = 0.5


@dataclass(frozen=True, slots=True)
class SchedulerCheck:
    """`/api/ps` answered in time (``latency_s``) and no model is wedged."""

    ok: bool
    latency_s: float | None
    wedged: tuple[str, ...]
    checked_at: float  # monotonic
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LivenessReport:
    """The newest scheduler and inference checks (None / empty before the first round)."""

    scheduler: SchedulerCheck | None
    models: tuple[ModelCheck, ...]

    @property
    def inference_ok(self) -> bool | None:
        """False if a model's check failed, True if some passed, None if none ran."""
        oks = [m.ok for m in self.models if m.ok is not None]
        return all(oks) if oks else None


@dataclass(frozen=True, slots=True)
class RepairEvent:
    """One repair step taken: ``stage`` runner or serve; ``at`` is wall seconds."""

    stage: str
    reason: str
    model: str | None
    at: float


def utc_now() -> datetime:
    return datetime.now(UTC)


class Liveness:
    """The checks and repairs of one server; see the module docstring.

    ``api`` is None when nothing can ask Ollama (a test's fake probe stands in for
    the server): then :meth:`watch` only waits. ``warm()`` names the models n3d keeps
    warm (the only ones probed). ``find(serve_pid)`` lists serve's runners (blocking;
    run in a thread). ``clock`` is monotonic, ``wall`` aware UTC (compared with
    Ollama's ``expires_at``).
    """

    def __init__(
        self,
        api: OllamaView | None,
        *,
        settings: Callable[[], Settings],
        warm: Callable[[], Collection[str]] = frozenset,
        find: Callable[[int], dict[str, Runner]] = find_runners,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.api = api
        self.warm = warm
        self._find = find
        self._settings = settings
        self._clock, self._wall = clock, wall
        self.book = ModelBook(clock)
        self.baselines = Baselines()  # probes'
        self.traffic_baselines = Baselines()  # traffic's: not comparable with a probe's
        server = settings().server
        self.policy = RepairPolicy(
            server.failures_before_restart, settings().liveness.restart_when_slow
        )
        self.facts = FactsCache()
        self.listeners: list[Callable[[RepairEvent], None]] = []
        self.rounds = 0
        self._scheduler: SchedulerCheck | None = None
        self._loaded: list[str] = []
        self._look: tuple[float, dict[str, Runner]] | None = None

    # -- what callers see ------------------------------------------------------------

    def saw_output(self, model: str, at: float | None = None) -> None:
        """Traffic evidence (the proxy): ``model`` delivered output at ``at`` (monotonic)."""
        self.book.saw_output(model, at)

    def saw_rate(
        self, model: str, tokens_per_second: float, concurrency: int = 1, at: float | None = None
    ) -> None:
        """Traffic evidence (the proxy): a generation of ``model`` finished at ``at``
        (monotonic) at this decode rate, with ``concurrency`` generations in flight to
        this server beside it (itself included). Learnt and judged as the throughput
        ``tokens_per_second × concurrency``; the first ones set the traffic baseline."""
        # Ollama batches up to OLLAMA_NUM_PARALLEL sequences, and each one's rate falls as
        # more share a batch: a baseline learnt from one client would call a busy,
        # healthy server slow. The concurrency is the most in flight when the request
        # was sent and when it ended, so the estimate is low only when others that ran
        # beside it ended just before it did (and were not yet sent when it was): the
        # median of TRAFFIC_WINDOW rates and slow_factor's margin absorb that. A lost
        # GPU is ~20 times slower at any concurrency, its throughput as far below.
        throughput = tokens_per_second * max(1, concurrency)
        self.book.saw_rate(model, throughput, at)
        self.traffic_baselines.learn(model, throughput)

    def report(self) -> LivenessReport:
        return LivenessReport(self._scheduler, tuple(self.book.checks(self._loaded)))

    # -- the watch -----------------------------------------------------------------------

    async def watch(self, serve_pid: int | None, problem: Problem) -> Step:
        """Run rounds until serve must be restarted; returns that ``serve`` step.

        ``serve_pid`` is our child's (its runners are looked at and may be stopped);
        None for a server n3d does not own: then only checks and reports, and never
        returns. ``problem`` is told what keeps the server degraded after each round.
        """
        self.book.forget_checks()
        self.policy.new_server()
        self._scheduler, self._loaded, self._look = None, [], None
        if self.api is None:
            await anyio.sleep_forever()
        troubled = False
        next_at = anyio.current_time()
        while True:
            next_at = max(next_at + self._cadence(troubled), anyio.current_time())
            await anyio.sleep_until(next_at)
            # The round's time is when it was due, not when the loop woke for it: due
            # times are exactly a step apart, so a probe due every interval is sent
            # every interval, never skipped for a wake-up a millisecond late.
            late = max(0.0, anyio.current_time() - next_at)
            outcome = await self.round(serve_pid, problem, at=self._clock() - late)
            if outcome.stage == "serve":
                return outcome
            if outcome.stage != "keep":
                troubled = outcome.stage != "clear"

    async def round(
        self, serve_pid: int | None, problem: Problem, *, at: float | None = None
    ) -> Step:
        """One round (due ``at``, monotonic; default now), its runner step carried out;
        a ``serve`` step is announced and returned for the caller to carry out (only
        for a server n3d owns)."""
        step = await self.check(serve_pid, at=at)
        if step.stage == "runner" and serve_pid is not None:
            problem(f"repairing: {step.reason}")
            step = await self._runner_step(step, serve_pid)
        if step.stage == "serve" and serve_pid is not None:
            self._announce(step.stage, step.reason, step.model)
            return step
        if step.stage != "keep":  # keep: this round could judge nothing
            problem(step.reason if step.stage != "clear" else None)
        return step

    def _cadence(self, troubled: bool) -> float:
        s = self._settings()
        step = max(_MIN_ROUND_S, min(s.ollama.health_check_interval_s, s.liveness.probe_interval_s))
        if troubled:  # confirm a failure sooner, as the HTTP checks do
            step = min(step, max(_MIN_ROUND_S, 2.0 * s.server.health_timeout_s))
        return step

    def _parts(self, serve_pid: int | None) -> Parts:
        assert self.api is not None

        async def runners() -> dict[str, Runner] | None:
            return await self.runners(serve_pid)

        return Parts(
            self.api,
            self.book,
            self.baselines,
            self.traffic_baselines,
            self.facts,
            runners,
            self.is_warm,
            self._clock,
        )

    async def check(self, serve_pid: int | None, *, at: float | None = None) -> Step:
        """One round: both checks, then the repair policy's step (not carried out)."""
        assert self.api is not None
        s = self._settings()
        self.policy.failures_before_restart = s.server.failures_before_restart
        self.policy.restart_when_slow = s.liveness.restart_when_slow
        self.rounds += 1
        round_at = self._clock() if at is None else at
        can_repair = serve_pid is not None
        loaded, error, latency = await self._ps(s.server.health_timeout_s)
        if loaded is None and error is None:
            # It answered in time with something unreadable (logged where it entered):
            # not a failed check, and nothing to judge models by. Look again next round.
            return Step("keep")
        runners = await self.runners(serve_pid)
        stuck = await self._wedged(loaded or [], runners, s) if loaded is not None else {}
        self._scheduler = SchedulerCheck(
            error is None and not stuck, latency, tuple(stuck), self._clock(), error
        )
        if loaded is None:
            findings = Findings(scheduler_error=error)
            return self.policy.decide(findings, self._clock(), can_repair=can_repair)
        self._loaded = [m.name for m in loaded]
        inference = InferenceCheck(self._parts(serve_pid), s, round_at)
        for model in loaded:
            if model.name not in stuck:  # requests for a wedged model hang: no probe
                await inference.check(model)
        failing, slow = inference.standing(self._loaded)
        findings = Findings(None, stuck, inference.verdicts, inference.details, failing, slow)
        return self.policy.decide(findings, self._clock(), can_repair=can_repair)

    async def _ps(
        self, timeout_s: float
    ) -> tuple[list[LoadedModel] | None, str | None, float | None]:
        assert self.api is not None
        began = self._clock()
        try:
            with anyio.fail_after(timeout_s + _SLACK_S):
                loaded = await self.api.ps()
        except TimeoutError:
            return None, f"/api/ps did not answer within {timeout_s:g}s", None
        except UnexpectedResponse:
            return None, None, self._clock() - began
        except OllamaError as exc:
            return None, f"/api/ps: {exc.message}", None
        return loaded, None, self._clock() - began

    async def runners(self, serve_pid: int | None) -> dict[str, Runner] | None:
        """serve's runners now (None: not our server, so not ours to read)."""
        if serve_pid is None:
            return None
        return await anyio.to_thread.run_sync(self._find, serve_pid)

    async def _wedged(
        self, loaded: list[LoadedModel], runners: dict[str, Runner] | None, s: Settings
    ) -> dict[str, float]:
        """Models stuck unloading, with seconds past expiry; remembers this look."""
        now, previous = self._clock(), self._look
        self._look = (now, runners) if runners is not None else None
        if runners is None or previous is None:
            return {}  # no process tree, or no window yet: cannot tell busy from wedged
        found: dict[str, float] = {}
        wall = self._wall()
        for model in loaded:
            past = past_expiry_s(model.expires, wall)
            if past <= s.liveness.stuck_unload_after_s:
                continue
            assert self.api is not None
            facts = await self.facts.get(self.api, model, s.server.health_timeout_s)
            if facts is None:
                continue
            runner = runner_for(runners, facts.blobs)
            cpu = cpu_gained(runner_for(previous[1], facts.blobs), runner) if runner else None
            after_s = s.liveness.stuck_unload_after_s
            window = now - previous[0]
            if wedged(model.expires, wall, after_s, runner_cpu_s=cpu, window_s=window):
                found[model.name] = past
        return found

    async def _runner_step(self, step: Step, serve_pid: int) -> Step:
        assert step.model is not None
        model = step.model
        stuck = self._scheduler is not None and model in self._scheduler.wedged

        def announce(what: str) -> None:
            self._announce("runner", f"{step.reason}: {what}", model)

        outcome = await repair_runner(
            self._parts(serve_pid),
            model,
            self._settings(),
            wedged=stuck,
            wall=self._wall,
            announce=announce,
        )
        return self.policy.runner_outcome(model, outcome.back, step.reason)

    def _announce(self, stage: str, reason: str, model: str | None) -> None:
        log.warning("repair", stage=stage, model=model, reason=reason)
        metric("ollama.repairs", 1, "{repair}", stage=stage)
        event = RepairEvent(stage, reason, model, time.time())
        for listener in list(self.listeners):
            listener(event)

    def is_warm(self, name: str) -> bool:
        key = model_key(name)
        return any(model_key(w) == key for w in self.warm())
