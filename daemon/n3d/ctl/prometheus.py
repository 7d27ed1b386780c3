"""The `metrics` result in the Prometheus text exposition format (version 0.0.4).

Suitable for node_exporter's textfile collector. Names follow Prometheus's
naming guide: the dotted n3d name in snake case (``n3d.rpc.duration`` →
``n3d_rpc_duration``; names outside ``n3d.``/``ollama.`` get ``n3d_``), then the
base unit as a suffix (``s`` → ``_seconds``, ``ms`` → ``_seconds`` with the value
converted, ``By`` → ``_bytes``, ``{x}/s`` → ``_per_second``, ``1`` → ``_ratio``;
UCUM annotations such as ``{token}`` add nothing), then ``_total`` for counters.
A suffix already at the end of the name is not repeated
(``ollama.process.rss_bytes`` → ``ollama_process_rss_bytes``). Histograms are
written as summaries: ``{quantile="0.5"}``, ``{quantile="0.99"}``, ``_sum`` and
``_count``. Every family has ``# HELP`` (the dotted name and unit) and ``# TYPE``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["prometheus_name", "render_prometheus"]

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
    if snake[0].isdigit():
        snake = f"_{snake}"
    suffix, factor = _unit(unit)
    if suffix and not snake.endswith(f"_{suffix}"):
        snake = f"{snake}_{suffix}"
    if kind == "counter" and not snake.endswith("_total"):
        snake = f"{snake}_total"
    return snake, factor


def _number(value: Any, factor: float = 1.0) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    scaled = value * factor if factor != 1.0 else value
    if isinstance(scaled, float):
        if math.isnan(scaled):
            return "NaN"
        if math.isinf(scaled):
            return "+Inf" if scaled > 0 else "-Inf"
        if scaled.is_integer() and abs(scaled) < 1e15:
            return str(int(scaled))
        return repr(scaled)
    return str(scaled)


def _help(name: str, unit: str) -> str:
    text = f"n3d metric {name}" + (f" ({unit})" if unit else "")
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def render_prometheus(result: Mapping[str, Any]) -> str:
    """The whole exposition, families sorted by name, ending with a newline."""
    units_in = result.get("units")
    units: Mapping[str, Any] = units_in if isinstance(units_in, dict) else {}
    families: dict[str, list[str]] = {}

    def family(name: str, kind: str, prom_kind: str) -> tuple[str, float] | None:
        unit = str(units.get(name, ""))
        prom, factor = prometheus_name(name, unit, kind)
        if prom in families:
            return None  # two dotted names collapsing into one: keep the first
        families[prom] = [f"# HELP {prom} {_help(name, unit)}", f"# TYPE {prom} {prom_kind}"]
        return prom, factor

    for kind, prom_kind in (("counter", "counter"), ("gauge", "gauge")):
        group = result.get(f"{kind}s")
        if not isinstance(group, dict):
            continue
        for name, value in group.items():
            number = None
            named = family(str(name), kind, prom_kind)
            if named is not None:
                number = _number(value, named[1])
            if named is not None and number is not None:
                families[named[0]].append(f"{named[0]} {number}")
    histograms = result.get("histograms")
    for name, h in (histograms.items() if isinstance(histograms, dict) else ()):
        named = family(str(name), "histogram", "summary")
        if named is None or not isinstance(h, dict):
            continue
        prom, factor = named
        lines = families[prom]
        for quantile, key in (("0.5", "p50"), ("0.99", "p99")):
            number = _number(h.get(key), factor)
            if number is not None:
                lines.append(f'{prom}{{quantile="{quantile}"}} {number}')
        total, count = _number(h.get("sum"), factor), _number(h.get("count"))
        lines.append(f"{prom}_sum {total if total is not None else 0}")
        lines.append(f"{prom}_count {count if count is not None else 0}")
    return "".join("\n".join(families[k]) + "\n" for k in sorted(families))
