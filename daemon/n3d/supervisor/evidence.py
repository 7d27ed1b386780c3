"""What n3d knows of each model's inference: evidence of output, the last check, baselines.

Evidence that a model produces output comes from two places: traffic (the proxy
calls ``saw_output`` when a response from that model delivered bytes, and
``saw_rate`` with Ollama's decode rate when a generation of at least a few tokens
finished; it sees only the :class:`TrafficEvidence` protocol) and probes. A model
with output younger than ``probe_interval`` is not probed at all.

Baselines are n3d's memory of a healthy decode rate, per model, for the life of the
daemon (so across serve restarts): the median of the first :data:`BASELINE_SAMPLES`
good rates. A one-token probe's rate is noisy; a median of three is not, and a
first probe that paid for a cold cache does not set it alone. Probes and traffic
keep **separate** baselines: a one-token probe's rate (one decode step after the
prompt) and a long generation's (many steps, a growing context, batched with other
requests) are not comparable, so each is judged against its own kind.

Traffic is judged by the median of the model's last :data:`TRAFFIC_WINDOW` rates of
the current serve (:meth:`ModelBook.traffic_rate`): one request with a long prompt
or a long context decodes slower, and must not restart serve alone. A traffic rate
is a throughput estimate, a request's decode rate times the generations that ran on
its server at once (:meth:`~n3d.supervisor.liveness.Liveness.saw_rate`): eight
requests batched together each decode at a fraction of one alone, and the server
is no slower.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
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
    "TRAFFIC_WINDOW",
    "Source",
    "TrafficEvidence",
    "model_key",
]

BASELINE_SAMPLES = 3
TRAFFIC_WINDOW = 3  # a traffic verdict is the median of this many requests' rates
Source = Literal["probe", "traffic"]


class TrafficEvidence(Protocol):
    """What the request path tells liveness: ``model`` delivered output, and a finished
    generation's decode rate (tokens per second of Ollama's ``eval_duration``) with its
    ``concurrency``, the generations in flight to that server beside it, itself too."""

    def saw_output(self, model: str) -> None: ...

    def saw_rate(self, model: str, tokens_per_second: float, concurrency: int) -> None: ...


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
    ``output_at``/``checked_at`` are monotonic seconds. ``source`` says where the
    evidence, and so ``tokens_per_second`` and ``baseline_tps``, came from: a
    probe's rate against the probe baseline, or traffic's (the median of the last
    :data:`TRAFFIC_WINDOW` requests) against the traffic baseline.
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
    """Each model's healthy decode rate (tokens/s), learnt from its first good rates
    of one kind (probes, or traffic: one instance each)."""

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

    Traffic reaches it through :class:`~n3d.supervisor.liveness.Liveness`, the
    :class:`TrafficEvidence` the proxy calls. ``clock`` is monotonic.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._checks: dict[str, ModelCheck] = {}
        self._output: dict[str, tuple[float, Source]] = {}
        self._probe_started: dict[str, float] = {}
        self._rates: dict[str, deque[tuple[float, float]]] = {}  # key → (at, tokens/s)

    def saw_output(self, model: str, at: float | None = None) -> None:
        """Output from ``model`` at ``at`` (default now): it is alive, and not probed
        while this is younger than ``probe_interval``."""
        self._output_at(model, self._clock() if at is None else at, "traffic")

    def saw_rate(self, model: str, tokens_per_second: float, at: float | None = None) -> None:
        """A generation of ``model`` finished at ``at`` (default now) at this rate (the
        throughput estimate, module docstring): output too, and one of the last
        :data:`TRAFFIC_WINDOW` rates it is judged by."""
        at = self._clock() if at is None else at
        self._output_at(model, at, "traffic")
        rates = self._rates.setdefault(model_key(model), deque(maxlen=TRAFFIC_WINDOW))
        rates.append((at, tokens_per_second))

    def traffic_rate(self, model: str) -> tuple[float, float] | None:
        """The median of this serve's last :data:`TRAFFIC_WINDOW` traffic rates and when
        the newest came; None until that many came (fewer are not judged)."""
        rates = self._rates.get(model_key(model))
        if rates is None or len(rates) < TRAFFIC_WINDOW:
            return None
        return statistics.median(r for _, r in rates), rates[-1][0]

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
        self._rates.clear()
