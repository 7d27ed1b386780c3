"""Metrics: each one a log event and an aggregate the ``metrics`` method reads.

:func:`metric` logs ``{"event": "metric", "metric": NAME, "value": V, "unit": U,
"tags": {...}}`` (through the one structlog configuration of :mod:`n3d.logs`) and
feeds :data:`REGISTRY`. Metrics never raise into the caller.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from typing import Any, Literal

import structlog

__all__ = ["METRIC_KINDS", "REGISTRY", "MetricKind", "MetricsRegistry", "metric"]

MetricKind = Literal["counter", "gauge", "histogram"]

# What each metric of DESIGN.md aggregates as; unknown names are histograms.
METRIC_KINDS: dict[str, MetricKind] = {
    "ollama.tokens.total": "counter",
    "ollama.tokens.prompt": "counter",
    "ollama.tokens.completion": "counter",
    "ollama.model.deleted": "counter",
    "ollama.model.evicted": "counter",
    "ollama.server.started": "counter",
    "ollama.server.stopped": "counter",
    "ollama.server.restarts": "counter",
    "ollama.models.count": "gauge",
    "ollama.process.rss_bytes": "gauge",
}

_RESERVOIR = 2048  # samples kept per histogram for p50/p99


class _Histogram:
    __slots__ = ("count", "max", "min", "samples", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.samples: deque[float] = deque(maxlen=_RESERVOIR)

    def add(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.samples.append(value)

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.samples)

        def pct(p: float) -> float:
            # nearest-rank percentile over the reservoir
            if not ordered:
                return 0.0
            return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

        return {
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else 0.0,
            "max": self.max if self.count else 0.0,
            "p50": pct(0.50),
            "p99": pct(0.99),
        }


class MetricsRegistry:
    """In-process aggregation of metrics by name (tags go to the log events)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, float] = {}
        self._gauges: dict[str, float] = {}
        self._histograms: dict[str, _Histogram] = {}
        self._units: dict[str, str] = {}

    def record(self, name: str, value: float, unit: str, kind: MetricKind | None = None) -> None:
        kind = kind or METRIC_KINDS.get(name, "histogram")
        with self._lock:
            if name not in self._units:
                self._units[name] = unit
            if kind == "counter":
                self._counters[name] = self._counters.get(name, 0.0) + value
            elif kind == "gauge":
                self._gauges[name] = value
            else:
                # get-then-create: setdefault would build a reservoir on every call
                histogram = self._histograms.get(name)
                if histogram is None:
                    histogram = self._histograms[name] = _Histogram()
                histogram.add(value)

    def snapshot(self) -> dict[str, Any]:
        """`{counters, gauges, histograms, units}`; histograms carry count, sum, p50, p99."""
        with self._lock:
            return {
                "counters": dict(self._counters),
                "gauges": dict(self._gauges),
                "histograms": {k: h.summary() for k, h in self._histograms.items()},
                "units": dict(self._units),
            }

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()
            self._gauges.clear()
            self._histograms.clear()
            self._units.clear()


REGISTRY = MetricsRegistry()
_metric_log = structlog.get_logger("n3d.metrics")
_METRIC_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}
# (wrapper class, level) → would a logger of that class emit the level?
_enabled_cache: dict[tuple[Any, int], bool] = {}


def _logs_at(level: int) -> bool:
    """Whether structlog's current configuration emits ``level``; cached per wrapper class.

    Asking the configuration (not a flag set by :func:`configure_logging`) follows
    every reconfiguration, tests' ``capture_logs`` and ``reset_defaults`` included.
    Lets a filtered per-call metric skip building a bound logger it would discard.
    """
    wrapper = structlog.get_config()["wrapper_class"]
    key = (wrapper, level)
    enabled = _enabled_cache.get(key)
    if enabled is None:
        check = getattr(wrapper, "is_enabled_for", None)  # structlog's filtering loggers
        try:
            enabled = True if check is None else bool(check(None, level))
        except Exception:  # an unusual wrapper: let it filter for itself
            enabled = True
        if len(_enabled_cache) > 64:  # wrapper classes come from a handful of levels
            _enabled_cache.clear()
        _enabled_cache[key] = enabled
    return enabled


def metric(
    name: str,
    value: float,
    unit: str,
    *,
    kind: MetricKind | None = None,
    log_level: Literal["debug", "info"] = "info",
    **tags: Any,
) -> None:
    """Log one metric event and aggregate it; never raises.

    ``log_level="debug"`` is for per-request metrics (one per RPC call): they are
    always aggregated, but logged only when `[log].level` is debug, so a busy
    socket does not flood the journal.
    """
    try:
        REGISTRY.record(name, float(value), unit, kind)
        if _logs_at(_METRIC_LEVELS.get(log_level, logging.INFO)):
            emit = _metric_log.debug if log_level == "debug" else _metric_log.info
            emit("metric", metric=name, value=value, unit=unit, tags=tags)
    except Exception:  # a metric must never break the caller
        pass


