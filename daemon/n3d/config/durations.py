"""The checks of durations: seconds with a floor, and `keep_alive` as Ollama reads it.

Intervals and timeouts are plain numbers of seconds (ints widened to floats)
between a per-key floor and :data:`MAX_SECONDS`; a `keep_alive` is what Ollama
accepts (a Go duration string or seconds) *and* can hold without rounding it to
0. :func:`keep_alive_seconds` gives a checked keep_alive in seconds, for the
``keep_alive_s`` fields of the settings.
"""

from __future__ import annotations

import contextlib
import math
import re

from n3d.config.checks import Check, Invalid, describe
from n3d.ollama.duration import KeepAliveError, parse_go_duration, parse_keep_alive

__all__ = [
    "MAX_SECONDS",
    "keep_alive",
    "keep_alive_seconds",
    "ollama_keep_alive_problem",
    "seconds",
]

# The longest duration n3d accepts anywhere: Go's longest time.Duration (2**63-1 ns,
# ~292 years), which is also the most any duration handed to Ollama can mean.
MAX_SECONDS = (2**63 - 1) / 1e9


def _number(value: object) -> float:
    # bool is a subclass of int in Python, but `true` is no number in TOML.
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = ""
        if isinstance(value, str):
            with contextlib.suppress(KeepAliveError):  # only hint when it reads as a duration
                hint = f"; write the number {parse_go_duration(value):g} (seconds)"
        raise Invalid(f"expected a number of seconds, got {describe(value)}{hint}")
    if not math.isfinite(value):
        raise Invalid(f"expected a finite number of seconds, got {value}")
    return float(value)


def seconds(minimum: float, *, zero_ok: bool = False) -> Check:
    """Seconds as a float from ``minimum`` (the key's floor) to :data:`MAX_SECONDS`.

    ``zero_ok``: 0 is allowed too, where it means "off" or "at once". Between 0 and
    the floor is an error, never a busy loop (DESIGN.md: "Every number has a sane
    floor").
    """

    def check(value: object) -> float:
        number = _number(value)
        if number < 0 or (number == 0 and not zero_ok):
            wanted = "zero or more" if zero_ok else "more than zero"
            raise Invalid(f"expected {wanted} seconds, got {value}")
        if 0 < number < minimum:
            zero = "0 or " if zero_ok else ""
            raise Invalid(
                f"expected {zero}at least {minimum:g} seconds, got {value}: anything "
                "shorter would make n3d spin, not wait"
            )
        if number > MAX_SECONDS:
            raise Invalid(f"expected at most {MAX_SECONDS:.0f} seconds (~292 years), got {value}")
        return number

    return check


def keep_alive(*, minimum_s: float | None = None) -> Check:
    """A `keep_alive` as Ollama reads it (Go duration string or seconds), kept as written.

    Refused always: what Ollama rejects (with Ollama's words), and what Ollama
    cannot hold as written (:func:`ollama_keep_alive_problem`). With ``minimum_s``
    None, 0 is fine (unload when idle); otherwise 0 and any finite value under
    ``minimum_s`` are refused too (negative, "forever", always passes).
    """

    def check(value: object) -> str | float:
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(f"expected a finite number of seconds (-1 = forever), got {value}")
        try:
            seconds = parse_keep_alive(value)
        except KeepAliveError as exc:
            if "forever" in str(exc):  # the parser's own advice (a value past Go's range)
                raise Invalid(str(exc)) from None
            if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d*)?", value.strip()):
                n = value.strip()
                hint = f'write "{n}s" or the number {n}'
            else:
                hint = 'expected a duration like "5m", "1h30m" or "-1s", or seconds (-1 = forever)'
            raise Invalid(f"{exc}; {hint}") from None
        assert isinstance(value, str | int | float) and seconds is not None
        problem = ollama_keep_alive_problem(value, seconds, zero_ok=minimum_s is None)
        if problem:
            raise Invalid(problem)
        if minimum_s is not None and seconds == 0:
            raise Invalid(
                "a warm keep_alive of 0 would unload each model as soon as it is warmed; "
                'use -1 (forever) or a duration such as "24h"'
            )
        if minimum_s is not None and seconds < minimum_s:
            raise Invalid(
                f"a warm keep_alive under {minimum_s:g} s would have n3d reload the model "
                "over and over (it renews a finite keep_alive halfway through); "
                'use -1 (forever) or a duration such as "24h"'
            )
        return value

    return check


def ollama_keep_alive_problem(
    value: str | float, seconds: float, *, zero_ok: bool = True
) -> str | None:
    """Why Ollama cannot keep a model for ``value`` (``seconds`` as parsed), or None.

    Ollama holds a keep_alive as a Go ``time.Duration``, an int64 of nanoseconds
    (api/types.go ``Duration.UnmarshalJSON``): a number becomes
    ``time.Duration(t * float64(time.Second))``, which truncates toward zero, and a
    string goes through ``time.ParseDuration``, whose fractions truncate to whole
    nanoseconds too. So a positive value under 1 ns is stored as 0, which unloads
    the model as soon as it is idle (server/sched.go: ``sessionDuration <= 0``),
    whatever it looked like. (Values past int64 are refused by the parser itself.)
    Negative values mean forever and 0 written as 0 means 0: fine. ``zero_ok``
    only words the advice (whether to suggest writing 0).
    """
    if seconds < 0 or math.isinf(seconds):
        return None
    # parse_keep_alive already keeps whole nanoseconds as Ollama does, so a value
    # under 1 ns arrives here as 0: tell it from a 0 that was written as such.
    written_nonzero = (
        any(c in "123456789" for c in value) if isinstance(value, str) else value != 0
    )
    if seconds == 0 and not written_nonzero:
        return None
    if seconds == 0:
        zero = "write 0 if that is meant, else " if zero_ok else "write "
        return (
            f"{describe(value)} is less than a nanosecond: Ollama rounds it to 0, which "
            f'unloads the model as soon as it is idle; {zero}a duration such as "5m" '
            "or -1 (forever)"
        )
    return None


def keep_alive_seconds(value: str | float) -> float:
    """A keep_alive that :func:`keep_alive` accepted, in seconds; math.inf = forever."""
    parsed = parse_keep_alive(value)
    assert parsed is not None  # the check accepted it, so it is a real value
    return parsed
