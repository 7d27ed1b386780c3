"""What liveness asks of Ollama, and one bounded inference probe.

:class:`OllamaView` is the narrow surface liveness needs (`/api/ps`, `/api/show`,
the probe of :mod:`n3d.ollama.probe`); the daemon passes its probing
:class:`~n3d.ollama.client.OllamaClient`, tests a fake or a client over
``httpx.MockTransport``. :class:`FactsCache` keeps, per model and digest, what
`/api/show` says that liveness needs: the blobs its modelfile's ``FROM`` lines
name (the runner's ``--model`` is one of them) and whether the model only embeds
(probed through `/api/embed`). :func:`run_probe` sends one probe and says how it
went, never raising (every failure is a :class:`ProbeOutcome`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from n3d.errors import OllamaError, OllamaTimeout
from n3d.ollama.chunks import InferenceStats
from n3d.ollama.types import LoadedModel

__all__ = ["FactsCache", "ModelFacts", "OllamaView", "ProbeOutcome", "model_facts", "run_probe"]

# Beyond the probe's own bound, before liveness gives up on it itself: the client's
# clearer timeout wins when both fire.
_SLACK_S = 0.5


class OllamaView(Protocol):
    """The calls liveness makes (an :class:`~n3d.ollama.client.OllamaClient` is one)."""

    async def ps(self) -> list[LoadedModel]: ...

    async def show(self, model: str) -> dict[str, Any]: ...

    async def probe(self, model: str, *, embed: bool, timeout_s: float) -> InferenceStats: ...


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What `/api/show` tells liveness: the model's blob paths, whether it only embeds."""

    blobs: tuple[str, ...]
    embed_only: bool


def model_facts(show: Mapping[str, Any]) -> ModelFacts:
    """Facts from an `/api/show` answer.

    The modelfile's ``FROM`` lines name the weights' blob and, for vision models, the
    projector's (the commented ``# FROM name`` at its top is a hint, not a path).
    A model whose capabilities have ``embedding`` but not ``completion`` only embeds.
    """
    text = show.get("modelfile")
    blobs: list[str] = []
    if isinstance(text, str):
        for line in text.splitlines():
            if line.startswith("FROM "):
                path = line[5:].strip().strip('"')
                if path:
                    blobs.append(path)
    caps = show.get("capabilities")
    embed_only = isinstance(caps, list) and "embedding" in caps and "completion" not in caps
    return ModelFacts(tuple(blobs), embed_only)


class FactsCache:
    """:func:`model_facts` per model and digest: a model pulled again is asked again."""

    def __init__(self) -> None:
        self._facts: dict[tuple[str, str], ModelFacts] = {}

    async def get(self, api: OllamaView, model: LoadedModel, timeout_s: float) -> ModelFacts | None:
        """The facts of a loaded model; None when `/api/show` failed (asked again later)."""
        key = (model.name, model.digest)
        facts = self._facts.get(key)
        if facts is not None:
            return facts
        try:
            with anyio.fail_after(timeout_s + _SLACK_S):
                facts = model_facts(await api.show(model.name))
        except (OllamaError, TimeoutError):
            return None
        if len(self._facts) > 256:  # models come and go; never grow without bound
            self._facts.clear()
        self._facts[key] = facts
        return facts


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """How one probe went: answered (with Ollama's counters), timed out, or an error."""

    answered: bool
    timed_out: bool
    latency_s: float
    stats: InferenceStats | None = None
    error: str | None = None
    error_kind: str | None = None

    @property
    def tokens_per_second(self) -> float | None:
        return self.stats.tokens_per_second if self.stats is not None else None


async def run_probe(
    api: OllamaView,
    model: str,
    *,
    embed: bool,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeOutcome:
    """One probe of ``model`` bounded by ``timeout_s``; never raises.

    On timeout the request's connection is closed, which drops it from Ollama's
    queue (the client sees 499 in Ollama's log).
    """
    began = clock()
    try:
        with anyio.fail_after(timeout_s + _SLACK_S):
            stats = await api.probe(model, embed=embed, timeout_s=timeout_s)
    except (OllamaTimeout, TimeoutError):
        return ProbeOutcome(False, True, clock() - began, error=f"no answer within {timeout_s:g}s")
    except OllamaError as exc:
        return ProbeOutcome(False, False, clock() - began, error=exc.message, error_kind=exc.kind)
    return ProbeOutcome(True, False, clock() - began, stats)
