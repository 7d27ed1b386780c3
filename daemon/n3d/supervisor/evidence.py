"""What n3d knows of each model's inference: evidence of output, the last check, baselines.

Evidence that a model produces output comes from two places: traffic (the proxy,
when it exists, calls :meth:`ModelBook.saw_output` when a response from that model
delivered bytes; it sees only the :class:`TrafficEvidence` protocol) and probes.
A model with output younger than ``probe_interval`` is not probed at all.

Baselines are n3d's memory of a healthy decode rate, per model, for the life of the
daemon (so across serve restarts): the median of the first :data:`BASELINE_SAMPLES`
good probe rates. A one-token probe's rate is noisy; a median of three is not, and
a first probe that paid for a cold cache does not set it alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name

__all__ = [
    "BASELINE_SAMPLES",
    "Baselines",
    "ModelBook",
    "ModelCheck",
    "Source",
    "TrafficEvidence",
    "model_key",
]

BASELINE_SAMPLES = 3
Source = Literal["probe", "traffic"]


class TrafficEvidence(Protocol):
    """What the request path tells liveness: ``model`` delivered output at ``at``
    (monotonic seconds)."""

    def saw_output(self, model: str, at: float) -> None: ...


def model_key(name: str) -> str:
    """The name as Ollama matches it (`llama3` = `llama3:latest`, any case)."""
    try:
        return parse_model_name(name).key
    except InvalidModelName:
        return name.lower()


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """The inference check of one loaded model, as `health.checks.inference` shows it.

    ``state``: ``ok``, ``slow`` (answered below baseline / slow_factor), ``busy``
    (no answer in time, but its runner worked: queued behind real requests),
    ``waiting`` (its runner idle while another worked: Ollama's scheduler may be
    waiting on that one), ``hung`` (no answer and its runner did no work),
    ``unknown`` (no answer and no runner to look at), ``failed`` (Ollama answered
    an error), ``unchecked`` (not warm and no traffic: never probed) or
    ``pending`` (warm, not checked yet). ``ok`` is None for the last two.
    ``output_at``/``checked_at`` are monotonic seconds.
    """

    model: str
    state: str
    ok: bool | None
    source: Source | None = None
    latency_s: float | None = None
    tokens_per_second: float | None = None
    baseline_tps: float | None = None
    slow: bool = False
    output_at: float | None = None
    checked_at: float | None = None
    error: str | None = None
    warm: bool = True


class Baselines:
    """Each model's healthy decode rate (tokens/s), learnt from its first good probes."""

    def __init__(self, samples: int = BASELINE_SAMPLES) -> None:
        self._samples = samples
        self._seen: dict[str, list[float]] = {}
        self._baseline: dict[str, float] = {}

    def get(self, model: str) -> float | None:
        return self._baseline.get(model_key(model))

    def learn(self, model: str, tokens_per_second: float) -> float | None:
        """Take a good rate; the baseline once enough were seen (then it never moves)."""
        key = model_key(model)
        if key in self._baseline:
            return self._baseline[key]
        seen = self._seen.setdefault(key, [])
        seen.append(tokens_per_second)
        if len(seen) >= self._samples:
            self._baseline[key] = statistics.median(seen)
            del self._seen[key]
        return self._baseline.get(key)


class ModelBook:
    """The newest check, output and probe of each model (keyed as Ollama matches).

    Also the :class:`TrafficEvidence` the proxy will call. ``clock`` is monotonic.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._checks: dict[str, ModelCheck] = {}
        self._output: dict[str, tuple[float, Source]] = {}
        self._probe_started: dict[str, float] = {}

    def saw_output(self, model: str, at: float | None = None) -> None:
        """Output from ``model`` at ``at`` (default now): it is alive, and not probed
        while this is younger than ``probe_interval``."""
        self._output_at(model, self._clock() if at is None else at, "traffic")

    def probed(self, model: str, at: float) -> None:
        """A probe of ``model`` that started at ``at`` answered."""
        self._output_at(model, at, "probe")

    def _output_at(self, model: str, at: float, source: Source) -> None:
        key = model_key(model)
        last = self._output.get(key)
        if last is None or at >= last[0]:
            self._output[key] = (at, source)

    def last_output(self, model: str) -> tuple[float, Source] | None:
        return self._output.get(model_key(model))

    def probe_sent(self, model: str, at: float) -> None:
        """A probe of ``model`` started at ``at`` (answered or not)."""
        self._probe_started[model_key(model)] = at

    def last_probe(self, model: str) -> float | None:
        return self._probe_started.get(model_key(model))

    def record(self, check: ModelCheck) -> ModelCheck:
        """Keep ``check`` as the model's newest, with its newest output filled in."""
        output = self._output.get(model_key(check.model))
        if output is not None:
            check = replace(check, output_at=output[0], source=check.source or output[1])
        self._checks[model_key(check.model)] = check
        return check

    def check(self, model: str) -> ModelCheck | None:
        return self._checks.get(model_key(model))

    def checks(self, loaded: list[str]) -> list[ModelCheck]:
        """The newest checks of the ``loaded`` models, in that order."""
        found = (self._checks.get(model_key(name)) for name in loaded)
        return [check for check in found if check is not None]

    def forget_checks(self) -> None:
        """A new serve: its models' checks start over (baselines are kept elsewhere)."""
        self._checks.clear()
        self._output.clear()
        self._probe_started.clear()
