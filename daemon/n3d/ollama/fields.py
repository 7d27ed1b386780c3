"""Reading one field of a decoded Ollama answer, or a ValueError that names it.

The typed answers (:mod:`n3d.ollama.types` for listings and pulls,
:mod:`n3d.ollama.chunks` for generations) read their fields through these, so a
field of the wrong type fails the same way whichever answer it sits in: a
ValueError naming the field and quoting (briefly) what was sent, which the client
turns into UnexpectedResponse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from n3d.ollama.decoding import brief

__all__ = ["dict_field", "int_field", "str_field"]

_INT64 = 1 << 63


def str_field(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    """A string field; ``default`` when absent (ValueError when absent without one)."""
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"field '{key}' should be a string, got {brief(value)}")
    return value


def int_field(data: Mapping[str, Any], key: str) -> int | None:
    """An integer field (Go's int64: sizes, counts, nanoseconds), None when absent.

    A double that is not finite (`1e400` decodes to inf) is no integer: ValueError,
    never the OverflowError of ``int(inf)``. Nor is a value beyond int64, which Go
    never sends and whose arithmetic (a percentage of 1e308 bytes) would overflow later.
    """
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field '{key}' should be a number, got {brief(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"field '{key}' should be an integer, got {value!r}")
    number = int(value)
    if not -_INT64 <= number < _INT64:
        raise ValueError(f"field '{key}' should be a 64-bit integer, got {brief(value)}")
    return number


def dict_field(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """An object field as a new dict; ``{}`` when absent or not an object."""
    value = data.get(key)
    return dict(value) if isinstance(value, Mapping) else {}
