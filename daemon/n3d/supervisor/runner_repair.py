"""The ``runner`` repair step: stop one model's runner, then see whether the model is back.

Only that process is stopped (SIGTERM, SIGKILL after ``stop_timeout``;
:func:`~n3d.supervisor.runners.stop_runner`): serve and every other model go on.
Ollama notices its runner's end and loads the model again on the next request
(Ollama #7606: killing the runner alone cleared a stuck embed), and keep-warm
re-warms a warm model that left `/api/ps`. Then, within ``probe_timeout``:

- a model that was **wedged** is back once it is no longer past its expiry in
  `/api/ps` (the stuck unload completed, or it left);
- any other is back once a probe answers; probes go only to a model `/api/ps`
  lists (while it is missing, keep-warm is loading it again). A probe that times
  out while a new runner of the model is working (a slow reload) extends the wait by
  another ``probe_timeout``, up to ``start_timeout`` in all: loading is work too.

Not back in time: the caller (the repair policy) restarts serve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from n3d.errors import OllamaError
from n3d.ollama.types import LoadedModel, find_model
from n3d.supervisor.evidence import ModelCheck
from n3d.supervisor.inference import Parts
from n3d.supervisor.probe import ModelFacts, run_probe
from n3d.supervisor.runners import Runner, cpu_gained, progressed, runner_for, stop_runner
from n3d.supervisor.verdicts import past_expiry_s

if TYPE_CHECKING:
    from datetime import datetime

    from n3d.config import Settings

__all__ = ["RunnerOutcome", "repair_runner"]

_WAIT_S = 0.25  # between looks at /api/ps while the model is away


@dataclass(frozen=True, slots=True)
class RunnerOutcome:
    """What the step did (``what``, for the repair event) and whether the model is back."""

    what: str
    back: bool


async def repair_runner(
    parts: Parts,
    model: str,
    settings: Settings,
    *,
    wedged: bool,
    wall: Callable[[], datetime],
    announce: Callable[[str], None],
) -> RunnerOutcome:
    """Stop ``model``'s runner, ``announce(what was done)``, then verify (module docstring)."""
    facts = await _facts(parts, model, settings)
    runners = await parts.runners() or {}
    runner = runner_for(runners, facts.blobs)
    if runner is None:
        what = "no runner of it was found to stop"
    else:
        gone = await stop_runner(runner, settings.server.stop_timeout_s)
        what = (
            f"stopped its runner (pid {runner.pid})"
            if gone
            else (f"its runner (pid {runner.pid}) would not die")
        )
    announce(what)
    back = await _back(parts, model, facts, runner, settings, wedged=wedged, wall=wall)
    return RunnerOutcome(what, back)


async def _facts(parts: Parts, model: str, settings: Settings) -> ModelFacts:
    entry = await _listed(parts, model, settings.server.health_timeout_s)
    if entry is None:
        return ModelFacts((), False)
    facts = await parts.facts.get(parts.api, entry, settings.server.health_timeout_s)
    return facts or ModelFacts((), False)


async def _listed(parts: Parts, model: str, timeout_s: float) -> LoadedModel | None:
    """``model``'s entry in `/api/ps` now; None when missing or `/api/ps` failed."""
    try:
        with anyio.fail_after(timeout_s):
            return find_model(await parts.api.ps(), model)
    except (OllamaError, TimeoutError):
        return None


async def _back(
    parts: Parts,
    model: str,
    facts: ModelFacts,
    stopped: Runner | None,
    settings: Settings,
    *,
    wedged: bool,
    wall: Callable[[], datetime],
) -> bool:
    live, server = settings.liveness, settings.server
    began = parts.clock()
    deadline = began + live.probe_timeout_s
    limit = began + max(live.probe_timeout_s, server.start_timeout_s)
    while (remaining := deadline - parts.clock()) > 0:
        entry = await _listed(parts, model, min(server.health_timeout_s, remaining))
        if wedged:
            stuck_s = past_expiry_s(entry.expires, wall()) if entry is not None else 0.0
            if entry is None or stuck_s <= live.stuck_unload_after_s:
                return True
            await anyio.sleep(min(_WAIT_S, remaining))
            continue
        if entry is None:
            await anyio.sleep(min(_WAIT_S, max(0.0, deadline - parts.clock())))
            continue
        before = await parts.runners() or {}
        probe_began = parts.clock()
        parts.book.probe_sent(model, probe_began)
        outcome = await run_probe(
            parts.api, model, embed=facts.embed_only, timeout_s=remaining, clock=parts.clock
        )
        if outcome.answered:
            parts.book.probed(model, probe_began)
            tps = outcome.tokens_per_second
            check = ModelCheck(
                model,
                "ok",
                True,
                "probe",
                outcome.latency_s,
                tps,
                parts.baselines.get(model),
                checked_at=parts.clock(),
            )
            parts.book.record(check)
            return True
        if outcome.timed_out:
            after = await parts.runners() or {}
            own = runner_for(after, facts.blobs)
            reloading = (
                own is not None
                and not own.same_process(stopped)
                and progressed(
                    cpu_gained(runner_for(before, facts.blobs), own),
                    parts.clock() - probe_began,
                )
            )
            if reloading and deadline + live.probe_timeout_s <= limit:
                deadline += live.probe_timeout_s
                continue
            return False
        await anyio.sleep(min(_WAIT_S, max(0.0, deadline - parts.clock())))  # an error answer
    return False
