"""n3d's metrics as Prometheus text, rendered once, in the daemon, by ``prometheus_client``.

``GET /metrics`` on the proxy listener and the ``metrics.prometheus`` method (what
``n3ctl metrics --prometheus`` prints) answer this same text. A custom collector
reads a :class:`~n3d.metrics.MetricsSnapshot`; ``prometheus_client`` writes the
exposition (format 0.0.4: escaping, ``# HELP``/``# TYPE``, ``_bucket``/``_sum``/
``_count``), so none of it is written by hand here.

Names follow DESIGN.md and Prometheus's naming guide: the dotted n3d name in snake
case (names outside ``n3d.``/``ollama.`` get ``n3d_``), the base unit as a suffix
(``s`` → ``_seconds``, ``ms`` → ``_seconds`` with values converted, ``By`` →
``_bytes``, ``{x}/s`` → ``_per_second``, ``1`` → ``_ratio``; UCUM annotations such as
``{token}`` add nothing; a suffix already there is not repeated), then ``_total`` for
counters. Tags are labels (model, route, status, method, server, …); a tag name that
is not a valid label is made one (``_`` for other characters, ``tag_`` before a
digit or ``__``, and before ``le``, the histogram's own). Histograms carry their
bucket counts, so a fleet's series add up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from n3d.metrics import REGISTRY, MetricsSnapshot, Series

__all__ = ["CONTENT_TYPE", "prometheus_name", "render_prometheus", "render_snapshot"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
# unit → (suffix, factor to the base unit)
_UNITS: dict[str, tuple[str, float]] = {
    "s": ("seconds", 1.0),
    "ms": ("seconds", 0.001),
    "us": ("seconds", 0.000001),
    "By": ("bytes", 1.0),
    "KiBy": ("bytes", 1024.0),
    "MiBy": ("bytes", 1048576.0),
    "1": ("ratio", 1.0),
    "%": ("percent", 1.0),
}


def _unit(unit: str) -> tuple[str, float]:
    if unit in _UNITS:
        return _UNITS[unit]
    if unit.endswith("/s"):
        return "per_second", 1.0
    return "", 1.0  # "{token}" and other annotations: a plain count


def prometheus_name(name: str, unit: str, kind: str) -> tuple[str, float]:
    """The exposition name of metric ``name`` and the factor its values are scaled by."""
    snake = _INVALID.sub("_", name).strip("_").lower() or "unnamed"
    if not snake.startswith(("n3d_", "ollama_")):
        snake = f"n3d_{snake}"
    suffix, factor = _unit(unit)
    if suffix and not snake.endswith(f"_{suffix}"):
        snake = f"{snake}_{suffix}"
    if kind == "counter" and not snake.endswith("_total"):
        snake = f"{snake}_total"
    return snake, factor


def _label_name(key: str) -> str:
    name = _INVALID.sub("_", key) or "_"
    if name[0].isdigit() or name.startswith("__") or name in ("le", "quantile"):
        name = f"tag_{name}"  # digits and `__` are not allowed; le is the histogram's own
    return name


def _labels(series: list[Series]) -> list[str]:
    """Every label name of a family's series, each once, sorted."""
    return sorted({_label_name(key) for s in series for key in s["tags"]})


def _values(entry: Series, names: list[str]) -> list[str]:
    tags = {_label_name(k): v for k, v in sorted(entry["tags"].items())}
    return [tags.get(name, "") for name in names]


def _bound(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else "+Inf"


class _SnapshotCollector(Collector):
    """One ``collect`` over one snapshot: a family per (name, kind), a sample per tag set."""

    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        grouped: dict[tuple[str, str], list[Series]] = {}
        for entry in self.snapshot["series"]:
            grouped.setdefault((entry["name"], entry["kind"]), []).append(entry)
        seen: set[str] = set()
        for (name, kind), series in sorted(grouped.items()):
            unit = series[0]["unit"]
            prom, factor = prometheus_name(name, unit, kind)
            if prom in seen:
                continue  # two dotted names collapsing into one: keep the first
            seen.add(prom)
            doc = f"n3d metric {name}" + (f" ({unit})" if unit else "")
            yield _family(prom, doc, kind, factor, series)


def _family(prom: str, doc: str, kind: str, factor: float, series: list[Series]) -> Metric:
    names = _labels(series)
    unique: dict[tuple[str, ...], Series] = {}
    for entry in series:
        unique.setdefault(tuple(_values(entry, names)), entry)  # labels may collapse
    family: Any
    if kind == "histogram":
        family = HistogramMetricFamily(prom, doc, labels=names)
        for values, entry in unique.items():
            bounds = [b * factor for b in entry.get("bounds", [])]
            cumulative = entry.get("buckets", [])
            buckets = [(_bound(b), float(n)) for b, n in zip(bounds, cumulative, strict=False)]
            buckets.append(("+Inf", float(entry.get("count", 0))))
            family.add_metric(list(values), buckets, entry.get("sum", 0.0) * factor)
        return family  # type: ignore[no-any-return]
    make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    family = make(prom, doc, labels=names)
    for values, entry in unique.items():
        family.add_metric(list(values), entry.get("value", 0.0) * factor)
    return family  # type: ignore[no-any-return]


def render_snapshot(snapshot: MetricsSnapshot) -> str:
    """The exposition of ``snapshot``: families sorted by name, ending with a newline."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry).decode()


def render_prometheus() -> str:
    """The exposition of n3d's metrics now (blocking: sorts every reservoir; use a thread)."""
    return render_snapshot(REGISTRY.snapshot())
