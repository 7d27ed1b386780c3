"""Metrics: each one a log event and an aggregate the ``metrics`` method reads.

:func:`metric` logs ``{"event": "metric", "metric": NAME, "value": V, "unit": U,
"tags": {...}}`` (through the one structlog configuration of :mod:`n3d.logs`) and
feeds :data:`REGISTRY`. Metrics never raise into the caller.

Tags survive aggregation (DESIGN.md, Logs and metrics): the registry keeps a total
per name, the seed's `metrics` shape, and one series per (name, tag set). A tag
set is the event's tags as text, without the :data:`EVENT_ONLY_TAGS`. Some values
come from outside (the model name a client asks about), so at most
:data:`MAX_SERIES_PER_NAME` tag sets are kept per name and later ones add up in
one series tagged ``overflow=true``: with a histogram's 2048-sample reservoir at 8
bytes a sample, a name costs at most about 16 MiB.

A histogram also counts its values in fixed buckets chosen by its unit
(:func:`bucket_bounds`): the p50/p99 of a reservoir cannot be added up across a
fleet, bucket counts can (Prometheus histograms, docs/proxy.md).

Server scope (DESIGN.md, several servers): inside :func:`server_scope` (and in
the tasks started from it) every metric gets the tag ``server`` and every log line
the field ``server``, so code that works on one server never passes its name.

Long because the result's shapes, the bounded series bookkeeping and the log side
of :func:`metric` are one contract (DESIGN.md: every metric is a log event *and*
an aggregate); split, each half would have to restate the other's rules.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Generic, Literal, NotRequired, TypeAlias, TypedDict, TypeVar

import structlog

__all__ = [
    "EVENT_ONLY_TAGS",
    "MAX_SERIES_PER_NAME",
    "METRIC_KINDS",
    "OVERFLOW",
    "REGISTRY",
    "HistogramSummary",
    "MetricKind",
    "MetricsRegistry",
    "MetricsSnapshot",
    "Series",
    "bucket_bounds",
    "metric",
    "metrics",
    "series_tags",
    "server_scope",
    "tagged_metric",
]

MetricKind = Literal["counter", "gauge", "histogram"]
Tags: TypeAlias = tuple[tuple[str, str], ...]
"""A series' tag set: ``(key, value)`` pairs sorted by key, values as text."""
Entry: TypeAlias = tuple[str, float, str, "MetricKind | None"]
"""One value for :func:`metrics` (and ``record_many``): name, value, unit, kind."""

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
    "ollama.request.errors": "counter",
    "ollama.requests.in_flight": "gauge",
    "ollama.repairs": "counter",
    "ollama.models.count": "gauge",
    "ollama.process.rss_bytes": "gauge",
}

MAX_SERIES_PER_NAME = 1000
OVERFLOW: Tags = (("overflow", "true"),)
# Tags naming one event, not a dimension: logged, never a series of their own
# (a series per pid would leave a stale gauge behind every restart of the server).
EVENT_ONLY_TAGS = frozenset({"pid"})
_MAX_TAG_CHARS = 1024  # more than any name n3d parses (~600); only bounds memory
_RESERVOIR = 2048  # samples kept per histogram for p50/p99
# Bucket upper bounds (Prometheus `le`) by unit; a value equal to a bound is in it.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_RATES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
_COUNTS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 1e4, 1e5)
_BOUNDS: dict[str, tuple[float, ...]] = {
    "s": _SECONDS,
    "ms": tuple(b * 1000.0 for b in _SECONDS),
    "By": tuple(float(2**k) for k in range(10, 41, 3)),  # 1 KiB .. 1 TiB
}


def bucket_bounds(unit: str) -> tuple[float, ...]:
    """The bucket upper bounds of a histogram in ``unit`` (seconds, rates, counts, bytes)."""
    found = _BOUNDS.get(unit)
    if found is not None:
        return found
    return _RATES if unit.endswith("/s") else _COUNTS


class HistogramSummary(TypedDict):
    count: int
    sum: float
    min: float
    max: float
    p50: float
    p99: float


class Series(TypedDict):
    """One tag set of one metric: ``value`` for counters and gauges, else the summary."""

    name: str
    kind: MetricKind
    unit: str
    tags: dict[str, str]
    value: NotRequired[float]
    count: NotRequired[int]
    sum: NotRequired[float]
    min: NotRequired[float]
    max: NotRequired[float]
    p50: NotRequired[float]
    p99: NotRequired[float]
    bounds: NotRequired[list[float]]  # histograms: bucket upper bounds, in the unit
    buckets: NotRequired[list[int]]  # cumulative counts per bound, then the +Inf one


class MetricsSnapshot(TypedDict):
    """The `metrics` result: totals by name over every tag set, then each series."""

    counters: dict[str, float]
    gauges: dict[str, float]
    histograms: dict[str, HistogramSummary]
    units: dict[str, str]
    series: list[Series]


_SERVER: ContextVar[str | None] = ContextVar("n3d_server", default=None)


@contextmanager
def server_scope(name: str) -> Iterator[None]:
    """Within it, and in tasks started from it: log lines and metrics carry ``server``."""
    token = _SERVER.set(name)
    try:
        with structlog.contextvars.bound_contextvars(server=name):
            yield
    finally:
        _SERVER.reset(token)


def _scoped(tags: dict[str, Any]) -> dict[str, Any]:
    server = _SERVER.get()
    if server is None or "server" in tags:
        return tags
    return {**tags, "server": server}


def _text(value: Any) -> str:
    if type(value) is str:  # the usual case first: this runs on every RPC call
        return value[:_MAX_TAG_CHARS]
    if isinstance(value, bool):
        text = "true" if value else "false"  # as the JSON log line spells it
    elif value is None:
        text = "null"
    else:
        text = str(value)
    return text[:_MAX_TAG_CHARS]


def series_tags(tags: dict[str, Any]) -> Tags:
    """The tag set ``tags`` are counted under."""
    if len(tags) == 1:  # most metrics have one tag (`n3d.rpc.duration`: method): no sort
        ((key, value),) = tags.items()
        return () if key in EVENT_ONLY_TAGS else ((key, _text(value)),)
    return tuple(sorted((k, _text(v)) for k, v in tags.items() if k not in EVENT_ONLY_TAGS))


class _Scalar:
    """A counter's total (``add`` adds) or, as :class:`_Gauge`, the last value."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def add(self, value: float) -> None:
        self.value += value


class _Gauge(_Scalar):
    __slots__ = ()

    def add(self, value: float) -> None:
        self.value = value


_Frozen: TypeAlias = tuple[int, float, float, float, "array[float]", "array[int]"]


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "max", "min", "next", "samples", "sum")

    def __init__(self, bounds: tuple[float, ...] = _COUNTS) -> None:
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.samples: array[float] = array("d")  # a ring of the newest: 8 bytes a sample
        self.next = 0
        self.bounds = bounds
        self.counts: array[int] = array("q", bytes(8 * (len(bounds) + 1)))  # the last: +Inf

    def add(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if len(self.samples) < _RESERVOIR:
            self.samples.append(value)
        else:
            self.samples[self.next] = value
            self.next = (self.next + 1) % _RESERVOIR
        self.counts[bisect.bisect_left(self.bounds, value)] += 1

    def frozen(self) -> _Frozen:
        """A copy for :func:`_summary`: cheap under the lock, the sorting comes after."""
        return self.count, self.sum, self.min, self.max, self.samples[:], self.counts[:]


def _cumulative(counts: array[int]) -> list[int]:
    total, out = 0, []
    for n in counts:
        total += n
        out.append(total)
    return out


def _summary(frozen: _Frozen) -> HistogramSummary:
    count, total, low, high, samples, _ = frozen
    ordered = sorted(samples)

    def pct(p: float) -> float:
        # nearest-rank percentile over the reservoir
        if not ordered:
            return 0.0
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return {
        "count": count,
        "sum": total,
        "min": low if count else 0.0,
        "max": high if count else 0.0,
        "p50": pct(0.50),
        "p99": pct(0.99),
    }


C = TypeVar("C", _Scalar, _Histogram)


class _Family(Generic[C]):
    """One name of one kind: the total over every tag set, and each tag set's own."""

    __slots__ = ("make", "series", "total")

    def __init__(self, make: Callable[[], C]) -> None:
        self.make: Callable[[], C] = make
        self.total: C = make()
        self.series: dict[Tags, C] = {}

    def cell(self, key: Tags, limit: int) -> tuple[C, bool]:
        """The series of ``key``, past ``limit`` tag sets the overflow one; True if that is new."""
        found = self.series.get(key)
        if found is not None:
            return found, False
        overflow = len(self.series) >= limit
        if overflow:
            key = OVERFLOW
            found = self.series.get(key)
            if found is not None:
                return found, False
        made = self.series[key] = self.make()
        return made, overflow


def _values(family: _Family[_Scalar]) -> list[tuple[Tags, float]]:
    return [(key, cell.value) for key, cell in family.series.items()]


def _series(name: str, kind: MetricKind, unit: str, key: Tags, **fields: float) -> Series:
    entry: Series = {"name": name, "kind": kind, "unit": unit, "tags": dict(key)}
    entry.update(fields)  # type: ignore[typeddict-item]  # value, or the summary's fields
    return entry


class MetricsRegistry:
    """In-process aggregation of metrics by name and by (name, tag set).

    At most ``max_series`` tag sets are kept per name; values of later ones add
    up in one series tagged ``overflow=true``, with one warning per name.
    """

    def __init__(self, *, max_series: int = MAX_SERIES_PER_NAME) -> None:
        self.max_series = max_series
        self._lock = threading.Lock()
        self._counters: dict[str, _Family[_Scalar]] = {}
        self._gauges: dict[str, _Family[_Scalar]] = {}
        self._histograms: dict[str, _Family[_Histogram]] = {}
        self._units: dict[str, str] = {}

    def record(
        self,
        name: str,
        value: float,
        unit: str,
        kind: MetricKind | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        self.record_many([(name, value, unit, kind)], tags)

    def record_many(self, entries: list[Entry], tags: dict[str, Any] | None = None) -> None:
        """Several metrics of one tag set (a proxied request's): the set's key made once."""
        key = series_tags(tags) if tags else ()
        capped = []
        with self._lock:
            for name, value, unit, kind in entries:
                if self._add(name, value, unit, kind or METRIC_KINDS.get(name, "histogram"), key):
                    capped.append(name)
        for name in capped:
            _metric_log.warning(
                "metrics.series_capped",
                metric=name,
                limit=self.max_series,
                detail="further tag sets add up in the series tagged overflow=true",
            )

    def _add(self, name: str, value: float, unit: str, kind: MetricKind, key: Tags) -> bool:
        """Count one value (the lock held); True when ``key`` went to the overflow series."""
        if name not in self._units:
            self._units[name] = unit
        # get-then-create: setdefault would build a family on every call
        if kind == "histogram":
            family = self._histograms.get(name)
            if family is None:
                bounds = bucket_bounds(unit)
                family = self._histograms[name] = _Family(lambda: _Histogram(bounds))
            cell, overflowed = family.cell(key, self.max_series)
            family.total.add(value)
            cell.add(value)
            return overflowed
        table = self._counters if kind == "counter" else self._gauges
        scalars = table.get(name)
        if scalars is None:
            scalars = table[name] = _Family(_Scalar if kind == "counter" else _Gauge)
        found, overflowed = scalars.cell(key, self.max_series)
        scalars.total.add(value)
        found.add(value)
        return overflowed

    def snapshot(self) -> MetricsSnapshot:
        """Totals per name (the seed's shape) and every series, sorted by name and tags."""
        with self._lock:  # copy here; summarising (the sorting) waits until after
            units = dict(self._units)
            counters = [(n, f.total.value, _values(f)) for n, f in self._counters.items()]
            gauges = [(n, f.total.value, _values(f)) for n, f in self._gauges.items()]
            histograms = [
                (n, f.total.frozen(), [(k, c.frozen()) for k, c in f.series.items()])
                for n, f in self._histograms.items()
            ]
        series: list[Series] = []
        for name, _, cells in counters:
            series.extend(_series(name, "counter", units[name], k, value=v) for k, v in cells)
        for name, _, cells in gauges:
            series.extend(_series(name, "gauge", units[name], k, value=v) for k, v in cells)
        for name, _, frozen in histograms:
            for key, data in frozen:
                entry = _series(name, "histogram", units[name], key, **_summary(data))
                entry["bounds"] = list(bucket_bounds(units[name]))
                entry["buckets"] = _cumulative(data[5])
                series.append(entry)
        series.sort(key=lambda s: (s["name"], s["kind"], sorted(s["tags"].items())))
        return {
            "counters": {name: total for name, total, _ in counters},
            "gauges": {name: total for name, total, _ in gauges},
            "histograms": {name: _summary(total) for name, total, _ in histograms},
            "units": units,
            "series": series,
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
    socket does not flood the journal. A tag named like a parameter (``kind``)
    goes through :func:`tagged_metric`.
    """
    tagged_metric(name, value, unit, tags, kind=kind, log_level=log_level)


def metrics(
    entries: list[Entry],
    tags: dict[str, Any],
    *,
    log_level: Literal["debug", "info"] = "info",
) -> None:
    """Several metrics of one tag set, as :func:`metric` each (logged, aggregated); never raises."""
    try:
        tags = _scoped(tags)
        REGISTRY.record_many(entries, tags)
        if _logs_at(_METRIC_LEVELS.get(log_level, logging.INFO)):
            emit = _metric_log.debug if log_level == "debug" else _metric_log.info
            for name, value, unit, _ in entries:
                emit("metric", metric=name, value=value, unit=unit, tags=tags)
    except Exception:  # a metric must never break the caller
        pass


def tagged_metric(
    name: str,
    value: float,
    unit: str,
    tags: dict[str, Any],
    *,
    kind: MetricKind | None = None,
    log_level: Literal["debug", "info"] = "info",
) -> None:
    """:func:`metric` with its tags as one mapping, so any tag name works; never raises."""
    try:
        tags = _scoped(tags)
        REGISTRY.record(name, float(value), unit, kind, tags)
        if _logs_at(_METRIC_LEVELS.get(log_level, logging.INFO)):
            emit = _metric_log.debug if log_level == "debug" else _metric_log.info
            emit("metric", metric=name, value=value, unit=unit, tags=tags)
    except Exception:  # a metric must never break the caller
        pass
