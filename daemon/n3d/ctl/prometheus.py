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

Tags are labels: a name has one sample (or one summary) per tag set of the
result's ``series``, labels sorted by name, values escaped as the format asks
(``\\``, ``\"``, ``\n``); a label name that is not valid Prometheus is made so
(``_`` for other characters, ``tag_`` before a digit, ``__`` or ``quantile``). A
result without ``series`` (an older daemon) gives each name's total alone.
Stdlib only, like the rest of n3ctl.
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


def _label_name(key: str) -> str:
    name = _INVALID.sub("_", key) or "_"
    if name[0].isdigit() or name.startswith("__") or name == "quantile":
        name = f"tag_{name}"  # digits and `__` are not allowed; quantile is the summary's own
    return name


def _label_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(tags: Any, *extra: tuple[str, str]) -> str:
    """``{a="x",b="y"}`` (tags sorted, ``extra`` last), or nothing when there are none."""
    pairs: dict[str, str] = {}
    if isinstance(tags, dict):
        for key in sorted(tags, key=str):
            pairs.setdefault(_label_name(str(key)), _label_value(tags[key]))
    pairs.update(extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def _by_series(result: Mapping[str, Any]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """The ``series`` of the result by (kind, name); empty from a daemon that sends none."""
    found = result.get("series")
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for entry in found if isinstance(found, list) else ():
        if isinstance(entry, dict):
            grouped.setdefault((str(entry.get("kind")), str(entry.get("name"))), []).append(entry)
    return grouped


def render_prometheus(result: Mapping[str, Any]) -> str:
    """The whole exposition, families sorted by name, ending with a newline.

    A name with series gets one sample per tag set (its labels); without any (an
    older daemon) the name's total is the one unlabelled sample.
    """
    units_in = result.get("units")
    units: Mapping[str, Any] = units_in if isinstance(units_in, dict) else {}
    by_series = _by_series(result)
    families: dict[str, list[str]] = {}

    def family(name: str, kind: str, prom_kind: str) -> tuple[str, float] | None:
        unit = str(units.get(name, ""))
        prom, factor = prometheus_name(name, unit, kind)
        if prom in families:
            return None  # two dotted names collapsing into one: keep the first
        families[prom] = [f"# HELP {prom} {_help(name, unit)}", f"# TYPE {prom} {prom_kind}"]
        return prom, factor

    def samples(kind: str, name: str, total: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Each series of ``name`` once per label set (labels may collapse), else its total."""
        unique: dict[str, Mapping[str, Any]] = {}
        for entry in by_series.get((kind, name)) or [total]:
            unique.setdefault(_labels(entry.get("tags")), entry)
        return list(unique.values())

    for kind, prom_kind in (("counter", "counter"), ("gauge", "gauge")):
        group = result.get(f"{kind}s")
        if not isinstance(group, dict):
            continue
        for name, value in group.items():
            named = family(str(name), kind, prom_kind)
            if named is None:
                continue
            prom, factor = named
            for entry in samples(kind, str(name), {"value": value}):
                number = _number(entry.get("value"), factor)
                if number is not None:
                    families[prom].append(f"{prom}{_labels(entry.get('tags'))} {number}")
    histograms = result.get("histograms")
    for name, h in (histograms.items() if isinstance(histograms, dict) else ()):
        named = family(str(name), "histogram", "summary")
        if named is None or not isinstance(h, dict):
            continue
        prom, factor = named
        lines = families[prom]
        for entry in samples("histogram", str(name), h):
            tags = entry.get("tags")
            for quantile, key in (("0.5", "p50"), ("0.99", "p99")):
                number = _number(entry.get(key), factor)
                if number is not None:
                    lines.append(f"{prom}{_labels(tags, ('quantile', quantile))} {number}")
            total, count = _number(entry.get("sum"), factor), _number(entry.get("count"))
            lines.append(f"{prom}_sum{_labels(tags)} {total if total is not None else 0}")
            lines.append(f"{prom}_count{_labels(tags)} {count if count is not None else 0}")
    return "".join("\n".join(families[k]) + "\n" for k in sorted(families))
