"""Go's `strconv.ParseInt` for base 10, where Ollama reads an integer from text.

Python's ``int()`` is more lenient than Go in ways that change what a setting means:
it accepts surrounding whitespace (`" 80"`), underscores (`"1_000"`) and any Unicode
decimal digit (`"١٠"`). Go's `strconv.ParseInt(s, 10, bits)` takes an optional sign
and ASCII digits only, and fails beyond ``bits`` (strconv/atoi.go; underscores are
allowed only with base 0).
"""

from __future__ import annotations

__all__ = ["parse_go_int"]

_ASCII_DIGITS = frozenset("0123456789")


def parse_go_int(text: str, bits: int = 64) -> int:
    """The integer Go's `strconv.ParseInt(text, 10, bits)` returns; ValueError where Go
    returns an error (syntax or range)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not set(digits) <= _ASCII_DIGITS:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    limit = 1 << (bits - 1)
    if not -limit <= value < limit:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value
