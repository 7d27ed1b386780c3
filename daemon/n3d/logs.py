"""The only place structlog is configured (at start, and again on a reload), and the
metrics registry.

Every module does ``log = structlog.get_logger(__name__)``; the name becomes the
``logger`` field. Output is one JSON object per line on stdout (``timestamp`` ISO
8601 UTC with ``Z``, ``level`` lowercase, ``logger``, ``event``, then fields), or
structlog's console rendering on a TTY. Each line is written with a single
``write`` and flushed, so lines are never split or interleaved, and exceptions are
structured fields (``exception``), never extra lines.

:func:`metric` logs ``{"event": "metric", "metric": NAME, "value": V, "unit": U,
"tags": {...}}`` and feeds :data:`REGISTRY`, which the ``metrics`` RPC method reads.
Metrics never raise into the caller.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
from collections import deque
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

__all__ = [
    "REGISTRY",
    "LogFormat",
    "MetricKind",
    "MetricsRegistry",
    "configure_logging",
    "metric",
    "reconfigure_logging",
]

LogFormat = Literal["auto", "json", "console"]
MetricKind = Literal["counter", "gauge", "histogram"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

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
        except Exception:  # noqa: BLE001 - an unusual wrapper: let it filter for itself
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
    except Exception:  # noqa: BLE001 - a metric must never break the caller
        pass


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name it was created for (the `logger` field)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedLoggerFactory:
    """Makes the loggers; also remembers how :func:`configure_logging` was called."""

    def __init__(self, file: TextIO | None, forced_format: LogFormat | None = None) -> None:
        self.file = file
        self.forced_format = forced_format  # `n3d run --log-format`: wins over [log]

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = str(args[0]) if args else "n3d"
        return _NamedWriteLogger(self.file or sys.stdout, name)


def _add_logger_name(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict.setdefault("logger", getattr(logger, "name", "n3d"))
    return event_dict


_exception_as_fields = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)

_FIRST = ("timestamp", "level", "logger", "event")


def _order_keys(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    ordered = {k: event_dict[k] for k in _FIRST if k in event_dict}
    ordered.update((k, v) for k, v in event_dict.items() if k not in ordered)
    return ordered


def _finite(obj: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) by strings, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_dumps(obj: Any, **kwargs: Any) -> str:
    try:
        return json.dumps(
            obj, default=str, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    except ValueError:  # NaN/inf somewhere: every line must stay valid JSON
        return json.dumps(_finite(obj), default=str, ensure_ascii=False, separators=(",", ":"))


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "info",
    *,
    file: TextIO | None = None,
    force_format: LogFormat | None = None,
) -> None:
    """Configure structlog for the whole process.

    ``auto`` renders for humans when the output is a TTY and as JSON lines
    otherwise (systemd, launchd, pipes). Colour also needs NO_COLOR unset.
    ``force_format`` (`n3d run --log-format`) wins over ``fmt``, now and at every
    :func:`reconfigure_logging`.
    """
    _apply(_NamedLoggerFactory(file, force_format), force_format or fmt, level)


def reconfigure_logging(fmt: LogFormat, level: str) -> bool:
    """Apply a reloaded `[log]` section: same output, the new level and format.

    Only a configuration made by :func:`configure_logging` and still in place is
    changed (a format forced on the command line stays); otherwise (n3d used as a
    library, tests capturing logs) structlog is left alone and this returns False.
    """
    factory = structlog.get_config().get("logger_factory")
    if not isinstance(factory, _NamedLoggerFactory):
        return False
    _apply(factory, factory.forced_format or fmt, level)
    return True


def _apply(factory: _NamedLoggerFactory, fmt: LogFormat, level: str) -> None:
    out = factory.file or sys.stdout
    is_tty = hasattr(out, "isatty") and out.isatty()
    use_json = fmt == "json" or (fmt == "auto" and not is_tty)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        # Fixed width (isoformat drops the microseconds on a whole second).
        structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%S.%fZ", utc=True),
    ]
    renderer: Any
    if use_json:
        shared += [_exception_as_fields, _order_keys]
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
    else:
        colors = is_tty and not os.environ.get("NO_COLOR")
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=factory,
        # Not cached: tests reconfigure (capture_logs), a reload changes the level,
        # and module loggers must follow both.
        cache_logger_on_first_use=False,
    )
