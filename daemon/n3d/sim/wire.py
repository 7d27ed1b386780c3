"""Bytes and text exactly as Go writes them: JSON, timestamps and durations.

Ollama is a Go program, so its JSON escapes `<`, `>` and `&` (encoding/json's HTML
escaping), keeps other non-ASCII characters as UTF-8, and writes times as RFC 3339
with nanoseconds and trailing zeros trimmed: `created_at` in UTC (`...Z`),
`modified_at`/`expires_at` with the local offset.
"""

from __future__ import annotations

import json
import time
from typing import Any

__all__ = [
    "MAX_DURATION_NS",
    "go_duration",
    "go_json",
    "go_quote",
    "rfc3339_local",
    "rfc3339_utc",
    "slog_time",
]

MAX_DURATION_NS = 2**63 - 1  # Go's MaxInt64 duration: "forever" keep-alive (~292 years)


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's `json.Marshal` writes it (HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # `<`, `>` and `&` can only occur inside strings, so replacing them is safe.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode()


def go_quote(text: str) -> str:
    """Go's `%q` for ordinary strings: double quotes with backslash escapes."""
    return json.dumps(text, ensure_ascii=False)


def _offset(gmtoff: int) -> str:
    if gmtoff == 0:
        return "Z"
    sign = "+" if gmtoff > 0 else "-"
    hours, minutes = divmod(abs(gmtoff) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _rfc3339(epoch_ns: int, *, utc: bool) -> str:
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    tm = time.gmtime(seconds) if utc else time.localtime(seconds)
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    frac = "" if frac == "." else frac
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", tm)
    return f"{stamp}{frac}{_offset(0 if utc else tm.tm_gmtoff)}"


def rfc3339_utc(epoch_ns: int | None = None) -> str:
    """Go's RFC3339Nano of a UTC time (`created_at`): `2024-06-04T21:38:31.83753Z`."""
    return _rfc3339(time.time_ns() if epoch_ns is None else epoch_ns, utc=True)


def rfc3339_local(epoch_ns: int) -> str:
    """Go's RFC3339Nano in local time (`modified_at`, `expires_at`): `...-07:00`."""
    return _rfc3339(epoch_ns, utc=False)


def slog_time(epoch_s: float | None = None) -> str:
    """slog's text-handler time: local, milliseconds, `2024-07-24T14:25:35.123-07:00`."""
    now = time.time() if epoch_s is None else epoch_s
    tm = time.localtime(now)
    millis = int((now % 1) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', tm)}.{millis:03d}{_offset(tm.tm_gmtoff)}"


def go_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` (`2.7s`, `1.234567ms`, `512.3µs`, `1m2.5s`)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.3f}".rstrip("0").rstrip(".") + "µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.6f}".rstrip("0").rstrip(".") + "ms"
    minutes, secs = divmod(ns / 1e9, 60)
    hours, minutes = divmod(int(minutes), 60)
    sec_text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{sec_text}"
    if minutes:
        return f"{minutes}m{sec_text}"
    return sec_text
