"""Go durations and Ollama's `keep_alive`, parsed as Ollama parses them.

`parse_go_duration` is Go's `time.ParseDuration` (same grammar, same error texts).
`parse_keep_alive` is Ollama's `api.Duration.UnmarshalJSON`: a JSON number means
seconds, a string is a Go duration, anything negative means forever, and a string
without a unit is an error (`time: missing unit in duration "300"`).

Seconds are floats; forever is `math.inf`.
"""

from __future__ import annotations

import json
import math
import re

__all__ = [
    "FOREVER",
    "KeepAliveError",
    "format_go_duration",
    "parse_go_duration",
    "parse_keep_alive",
]

FOREVER = math.inf

_UNITS_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")
_MAX_NS = 2**63 - 1


class KeepAliveError(ValueError):
    """A `keep_alive` or duration that Ollama would reject; the message is Ollama's."""


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (`"5m"`, `"1h30m"`, `"-1s"`, `"0"`)."""
    orig = text
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if text[:1] in ("-", "+"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if not text:
        raise KeepAliveError(f"time: invalid duration {_quote(orig)}")
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        assert match is not None  # the pattern can match the empty string
        whole, frac, unit = match.groups()
        if not whole and not frac:
            raise KeepAliveError(f"time: invalid duration {_quote(orig)}")
        if not unit:
            raise KeepAliveError(f"time: missing unit in duration {_quote(orig)}")
        if unit not in _UNITS_S:
            raise KeepAliveError(f"time: unknown unit {_quote(unit)} in duration {_quote(orig)}")
        value = float(f"{whole or 0}.{frac or 0}")
        total += value * _UNITS_S[unit]
        pos = match.end()
    if total * 1e9 > _MAX_NS:
        raise KeepAliveError(f"time: invalid duration {_quote(orig)}")
    return sign * total


def parse_keep_alive(value: object) -> float | None:
    """Seconds Ollama would keep a model loaded for this JSON `keep_alive` value.

    None (absent or JSON null) means "not given": Ollama then keeps a loaded model's
    timer, or uses its default for a new load. Negative values mean forever.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise KeepAliveError("Unsupported type: 'bool'")
    if isinstance(value, int | float):
        seconds = float(value)
        if math.isnan(seconds):
            raise KeepAliveError("Unsupported type: 'float64'")
        return FOREVER if seconds < 0 else seconds
    if isinstance(value, str):
        seconds = parse_go_duration(value)
        return FOREVER if seconds < 0 else seconds
    go_type = "[]interface {}" if isinstance(value, list) else "map[string]interface {}"
    raise KeepAliveError(f"Unsupported type: '{go_type}'")


def format_go_duration(seconds: float) -> str:
    """A Go-style duration string for seconds (`300` → `"5m0s"`, forever → `"-1s"`)."""
    if math.isinf(seconds):
        return "-1s"
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        if seconds >= 1e-3:
            return f"{sign}{seconds * 1e3:g}ms"
        if seconds >= 1e-6:
            return f"{sign}{seconds * 1e6:g}µs"
        return f"{sign}{seconds * 1e9:g}ns"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    out += f"{secs:g}s"
    return sign + out
