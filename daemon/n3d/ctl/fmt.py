"""Small pure formatters shared by n3ctl's renderers: sizes, durations, times, colour, tables.

Sizes are decimal (1 GB = 10**9 bytes), as ``ollama list`` and ``docker`` print
them, so the numbers match what users already see. Times arrive either as
epoch seconds (n3d's own fields) or ISO 8601 strings (Ollama's ``modified_at``,
``expires_at``); :func:`epoch` accepts both.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence

# typing costs n3ctl status ~2 ms to import; the hints need it only for checking.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

__all__ = [
    "as_dict",
    "as_number",
    "Style",
    "ago",
    "color_enabled",
    "epoch",
    "human_bytes",
    "human_duration",
    "local_time",
    "names",
    "printable",
    "printable_tree",
    "table",
]

_RESET = "\x1b[0m"

# What a terminal would act on rather than show: C0 controls but tab and newline
# (ESC starts every escape sequence, BEL ends OSC titles, CR and BS overwrite),
# DEL, C1 controls (0x9b is a one-byte CSI), and the bidi overrides and isolates
# that reorder what follows them. Each is shown as its escape, ``\x1b``.
_UNPRINTABLE = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *range(0x20),
        0x7F,
        *range(0x80, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
    if code not in (0x09, 0x0A)
}
_CODES = {"green": "32", "yellow": "33", "red": "31", "dim": "2", "bold": "1", "cyan": "36"}


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if the daemon sent an object there, else ``{}`` (n3ctl never trusts a shape)."""
    return value if isinstance(value, dict) else {}


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: each control character as its escape.

    Everything n3ctl prints for humans goes through this (see :func:`printable_tree`),
    because what it prints comes from Ollama (versions, model names, error texts)
    and from whatever answers on the socket: ``\x1b]0;title\x07`` would set the
    window title, ``\x1b[2J`` clear the screen. JSON output is never passed here.
    """
    return text if text.isprintable() else text.translate(_UNPRINTABLE)


def printable_tree(value: Any) -> Any:
    """``value`` (an RPC result) with every string in it, keys too, made :func:`printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_tree(k): printable_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_tree(v) for v in value]
    return value


def color_enabled(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Colour only on a TTY, never with ``NO_COLOR`` set (non-empty) or ``TERM=dumb``."""
    e = os.environ if env is None else env
    if e.get("NO_COLOR") or e.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Style:
    """Wraps text in ANSI SGR codes when enabled, else returns it unchanged."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *names: str) -> str:
        if not self.enabled or not names:
            return text
        codes = ";".join(_CODES[n] for n in names)
        return f"\x1b[{codes}m{text}{_RESET}"


def human_bytes(n: float | None) -> str:
    """``4.7 GB``, ``512 MB``, ``900 B``; ``-`` for unknown."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def human_duration(seconds: float | None) -> str:
    """systemd-like spans: ``45s``, ``3min 20s``, ``2h 3min``, ``4 days 2h``; ``-`` if unknown."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    minutes, sec = divmod(s, 60)
    if minutes < 60:
        return f"{minutes}min {sec}s" if sec else f"{minutes}min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}min" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    unit = "day" if days == 1 else "days"
    return f"{days} {unit} {hours}h" if hours else f"{days} {unit}"


def ago(then: float | None, now: float) -> str:
    """docker-like relative times: ``5 seconds ago``, ``2 weeks ago``, ``in 4 minutes``."""
    if then is None:
        return "-"
    delta = now - then
    future = delta < 0
    delta = abs(delta)
    steps = (
        (60, 1, "second"),
        (3600, 60, "minute"),
        (86400, 3600, "hour"),
        (86400 * 14, 86400, "day"),
        (86400 * 60, 86400 * 7, "week"),
        (86400 * 365 * 2, 86400 * 30, "month"),
        (float("inf"), 86400 * 365, "year"),
    )
    for limit, size, unit_name in steps:
        if delta < limit:
            count = int(delta // size)
            text = f"{count} {unit_name}{'' if count == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    raise AssertionError("unreachable: the last step has no limit")  # pragma: no cover


def epoch(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO 8601 string; None if absent or unreadable.

    Go's zero time (year 1), which Ollama sends for "never", also gives None.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    from datetime import UTC, datetime  # only models/warm tables need it

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.year < 1970:
        return None
    return parsed.timestamp()


def local_time(seconds: float, clock: Callable[[float], time.struct_time] = time.localtime) -> str:
    """``Tue 2024-06-04 14:38:31 UTC``, the way ``systemctl status`` writes a time."""
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", clock(seconds)).rstrip()


def names(value: Any) -> list[str]:
    """Model names from a list of names or of ``{name: ...}`` objects; [] otherwise."""
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            out.append(item["name"])
    return out


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], style: Style) -> str:
    """A ``docker ps``-style table: upper-case header, columns three spaces apart.

    Widths are measured on the plain text, so colour (only in headers) never
    breaks alignment. Trailing spaces are stripped from every line.
    """
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    head = "   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    lines = [style(head, "bold") if style.enabled else head]
    for row in rows:
        lines.append("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
