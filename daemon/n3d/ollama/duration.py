"""Go durations and Ollama's `keep_alive`, parsed as Ollama parses them.

`parse_go_duration_ns` is Go's `time.ParseDuration` (src/time/format.go), step for
step: ASCII digits only, the same int64 overflow rules (`9223372036854775807ns` and
`-9223372036854775808ns` are the extremes), `"0"` alone needs no unit, and the error
texts, quoted as Go's `time.quote` does (bytes outside printable ASCII in hex).
`parse_keep_alive` is Ollama's `api.Duration.UnmarshalJSON` (api/types.go): a JSON
number means seconds (truncated to whole nanoseconds, as `time.Duration(t *
float64(time.Second))` does), a string is a Go duration, anything negative means
forever, and a string without a unit is an error (`time: missing unit in duration
"300"`).

Seconds are floats; forever is `math.inf`.
"""

from __future__ import annotations

import math

__all__ = [
    "FOREVER",
    "KeepAliveError",
    "format_go_duration",
    "parse_go_duration",
    "parse_go_duration_ns",
    "parse_keep_alive",
]

FOREVER = math.inf

# Go's unitMap: nanoseconds per unit.
_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_2_63 = 1 << 63  # Go accumulates in uint64 and allows 1<<63 only for a negative result
_ASCII_DIGITS = frozenset("0123456789")


class KeepAliveError(ValueError):
    """A `keep_alive` or duration that Ollama would reject; the message is Ollama's."""


def _quote(text: str) -> str:
    """``text`` in double quotes as Go's `time.quote` writes it in errors.

    Each byte of a character outside printable ASCII (control characters too) is
    written as a backslash, `x` and two hex digits; a double quote and a backslash get
    a backslash. A lone surrogate (JSON can carry one) counts as U+FFFD, which is what
    Go's JSON decoder turns it into.
    """
    out = ['"']
    for char in text:
        if 0xD800 <= ord(char) <= 0xDFFF:
            char = "\ufffd"
        if char < " " or char >= "\x80":
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
        elif char in ('"', "\\"):
            out.append("\\" + char)
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _invalid(orig: str) -> KeepAliveError:
    return KeepAliveError(f"time: invalid duration {_quote(orig)}")


def _digits(text: str, pos: int) -> int:
    """The end of the run of ASCII digits at ``pos`` (Go's `'0' <= c && c <= '9'`)."""
    while pos < len(text) and text[pos] in _ASCII_DIGITS:
        pos += 1
    return pos


def _fraction(digits: str) -> tuple[int, float]:
    """Go's `leadingFraction`: digits past 1<<63 stop adding precision, never fail."""
    value, scale = 0, 1.0
    for char in digits:
        if value > (_2_63 - 1) // 10:
            break
        following = value * 10 + int(char)
        if following > _2_63:
            break
        value, scale = following, scale * 10
    return value, scale


def parse_go_duration_ns(text: str) -> int:
    """Nanoseconds in a Go duration string (`"5m"`, `"1h30m"`, `"-1.5s"`, `"0"`).

    Raises :class:`KeepAliveError` with Go's own message where `time.ParseDuration`
    returns an error.
    """
    orig, s = text, text
    neg = False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise _invalid(orig)
    total, pos = 0, 0
    while pos < len(s):
        if s[pos] != "." and s[pos] not in _ASCII_DIGITS:
            raise _invalid(orig)
        end = _digits(s, pos)
        whole_text, pre = s[pos:end], end > pos
        whole = int(whole_text) if pre else 0
        if whole > _2_63:  # Go's leadingInt overflows
            raise _invalid(orig)
        pos = end
        frac, scale, post = 0, 1.0, False
        if pos < len(s) and s[pos] == ".":
            end = _digits(s, pos + 1)
            frac, scale = _fraction(s[pos + 1 : end])
            post, pos = end > pos + 1, end
        if not pre and not post:  # no digits at all (".s", "-.")
            raise _invalid(orig)
        end = pos
        while end < len(s) and s[end] != "." and s[end] not in _ASCII_DIGITS:
            end += 1
        if end == pos:
            raise KeepAliveError(f"time: missing unit in duration {_quote(orig)}")
        unit_text, pos = s[pos:end], end
        unit = _UNITS_NS.get(unit_text)
        if unit is None:
            raise KeepAliveError(
                f"time: unknown unit {_quote(unit_text)} in duration {_quote(orig)}"
            )
        if whole > _2_63 // unit:
            raise _invalid(orig)
        value = whole * unit
        if frac > 0:
            # Go: uint64(float64(f) * (float64(unit) / scale)), in doubles as here.
            value += int(float(frac) * (float(unit) / scale))
            if value > _2_63:
                raise _invalid(orig)
        total += value
        if total > _2_63:
            raise _invalid(orig)
    if neg:
        return -total
    if total > _2_63 - 1:
        raise _invalid(orig)
    return total


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string; see :func:`parse_go_duration_ns`."""
    return parse_go_duration_ns(text) / 1_000_000_000


def parse_keep_alive(value: object) -> float | None:
    """Seconds Ollama would keep a model loaded for this JSON `keep_alive` value.

    None (absent or JSON null) means "not given": Ollama then keeps a loaded model's
    timer, or uses its default for a new load. Negative values mean forever.

    A number becomes whole nanoseconds as Go converts `t * 1e9` to an int64, so
    `1e-10` is 0 (unload). One whose nanoseconds do not fit an int64 (from about
    9.2e9 s, 292 years) is an error here: Go leaves that conversion to the CPU, and
    Ollama reads it as 0 (unload at once) on x86-64 but as forever on arm64.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise KeepAliveError("Unsupported type: 'bool'")
    if isinstance(value, int | float):
        seconds = float(value)
        if math.isnan(seconds):
            raise KeepAliveError("Unsupported type: 'float64'")
        if seconds < 0 or seconds == FOREVER:  # inf: n3d's own forever, sent as -1
            return FOREVER
        nanoseconds = seconds * 1e9  # in a double, as Go computes t * float64(time.Second)
        if nanoseconds >= _2_63:
            raise KeepAliveError(
                f"keep_alive {value:g} is beyond Go's time.Duration (about 292 years), which "
                "Ollama reads as 0 or as forever depending on the CPU; use -1 for forever"
            )
        return int(nanoseconds) / 1_000_000_000
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
