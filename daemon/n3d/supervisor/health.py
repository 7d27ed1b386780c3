"""Health of the Ollama server: a throttled, single-flight `HEAD /` probe.

* A result is reused for ``interval_s`` (the `health_check_interval`): a caller
  asking within that window gets the cached result with its age, and no request.
* ``force=True`` skips the cache.
* Concurrent callers share one in-flight probe (:mod:`n3d.singleflight`): a
  hundred callers at once cause one HTTP request. If the caller running the probe
  is cancelled, a waiting caller takes over with a new probe, so nobody waits forever.
* Every probe is bounded by ``timeout_s`` and emits ``ollama.health.check_duration``
  (seconds, tag ``ok``).

"Alive" means a timed probe answered (STYLE.md 5), not that a pid or port exists.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from n3d.errors import OllamaError
from n3d.metrics import metric
from n3d.singleflight import SingleFlight

__all__ = ["HealthChecker", "HealthReport", "HealthResult", "Probe"]

Probe = Callable[[float], Awaitable[float]]
"""``await probe(timeout_s)`` → latency in seconds; raises OllamaError on failure."""

# Slack over the probe's own timeout before we give up on it ourselves, so the
# client's clearer timeout error wins when both fire.
_SLACK_S = 0.5


@dataclass(frozen=True, slots=True)
class HealthResult:
    """One probe's outcome. ``at`` is monotonic seconds, ``checked_at`` wall seconds."""

    ok: bool
    latency_s: float | None
    checked_at: float
    at: float
    error: str | None = None
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What a caller gets: a result, its age in seconds, whether it came from cache.

    The `health` method's JSON is :mod:`n3d.api`'s to build (latency in milliseconds).
    """

    result: HealthResult
    age_s: float
    cached: bool

    @property
    def ok(self) -> bool:
        return self.result.ok


class HealthChecker:
    """Throttled, single-flight health checks over ``probe``.

    ``interval_s`` and ``timeout_s`` may be changed at run time (config reload).
    ``probes`` counts the probes actually sent, for tests and diagnostics.
    """

    def __init__(
        self,
        probe: Probe,
        *,
        interval_s: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._last: HealthResult | None = None
        self._flight: SingleFlight[None, HealthResult] = SingleFlight()  # one key: the server
        self.probes = 0
        # Called with every new result (not with cached ones), e.g. to publish events.
        self.listeners: list[Callable[[HealthResult], None]] = []

    @property
    def last(self) -> HealthResult | None:
        """The newest result, however old (None before the first probe)."""
        return self._last

    def forget(self) -> None:
        """Drop the cached result (the server was restarted: the old answer is moot)."""
        self._last = None

    async def check(self, *, force: bool = False) -> HealthReport:
        """A health report: cached if younger than ``interval_s`` unless ``force``."""
        last = self._last
        if not force and last is not None:
            age = self._clock() - last.at
            if age < self.interval_s:
                return HealthReport(last, age, cached=True)
        result = await self._flight.run(None, self._probe_once)
        # Probed for this call or shared with the caller that sent it: fresh either way.
        return HealthReport(result, max(0.0, self._clock() - result.at), cached=False)

    async def _probe_once(self) -> HealthResult:
        result = await self._measure()
        self._last = result
        for listener in list(self.listeners):
            listener(result)
        return result

    async def _measure(self) -> HealthResult:
        self.probes += 1
        began = self._clock()
        error: OllamaError | None = None
        latency: float | None = None
        timeout_s = self.timeout_s
        try:
            with anyio.fail_after(timeout_s + _SLACK_S):
                latency = await self._probe(timeout_s)
        except OllamaError as exc:
            error = exc
        except TimeoutError:
            error = None
            latency = None
        now = self._clock()
        ok = latency is not None
        metric("ollama.health.check_duration", now - began, "s", ok=ok)
        if ok:
            return HealthResult(True, latency, time.time(), now)
        if error is None:
            return HealthResult(
                False, None, time.time(), now, f"no answer within {timeout_s:g}s", "timeout"
            )
        return HealthResult(False, None, time.time(), now, error.message, type(error).kind)
