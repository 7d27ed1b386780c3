"""How the bodies of Ollama's answers are read: one JSON decoder, bounded.

:func:`decode_json` raises only ValueError: a number that overflows a double
(``1e400``, inf to Python) or a bare ``NaN``/``Infinity`` is refused anywhere in the
answer (it would reach n3d's clients as ``Infinity``, which is not JSON), bytes that
are not UTF-8 are refused, and nesting deeper than ``MAX_DEPTH`` (Python's parser
raises RecursionError near 1 000 levels) is refused for the whole answer, so nothing
downstream (the RPC encoder, the log) can recurse on Ollama's data. An answer with
more than ``MAX_VALUES`` values is refused before decoding: `{},` is 3 bytes of
text but ~70 as a Python dict, so the byte caps of :mod:`n3d.ollama.bodies` alone
would let 64 MiB of text become gigabytes of objects.
:data:`SHAPE_ERRORS` lists what shaping a decoded answer can raise; the translator in
:mod:`n3d.ollama.wire` turns each into UnexpectedResponse.
"""

from __future__ import annotations

import json
import math
import reprlib
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "SHAPE_ERRORS",
    "brief",
    "decode_json",
    "error_text",
    "parse_final_object",
    "parse_object",
]

# Deeper than any answer Ollama gives (/api/show's tensors are 3 levels, tool-call
# arguments a handful), shallow enough that re-encoding it can never recurse too far.
MAX_DEPTH = 64

# Far more values than any answer holds (a listing has hundreds, /api/show's tensor
# list a few thousand, a generation's `context` one per token of a 256K context), few
# enough that even empty dicts stay near 150 MB. Counted as commas and brackets,
# strings included: an upper bound, never too low.
MAX_VALUES = 2_000_000

# What decoding or shaping a foreign answer can raise: json's ValueError (and
# UnicodeDecodeError), OverflowError from int(inf), RecursionError from deep nesting,
# TypeError/LookupError/AttributeError from a field of an unexpected shape.
SHAPE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    ArithmeticError,
    RecursionError,
)

# A field value quoted in an error message: short, shallow, whatever Ollama sent.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother = 2, 60, 60
_MAX_ERROR_TEXT = 2000


def brief(value: object) -> str:
    """``repr(value)`` cut short (a few levels, a few dozen characters each)."""
    return _BRIEF.repr(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Go never writes NaN or Infinity


def _check_depth(value: dict[str, Any] | list[Any], what: str) -> None:
    """ValueError when ``value`` nests containers more than MAX_DEPTH levels deep.

    A loop, not recursion: the point is to never recurse on Ollama's data.
    """
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{what} is nested more than {MAX_DEPTH} levels deep")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def decode_json(body: bytes | str, *, what: str) -> Any:
    """One JSON value; every way it can be unusable is a ValueError naming ``what``."""

    def finite(text: str) -> float:
        # `1e400` is inf to Python: refused anywhere in the answer, because it would
        # go on to a client as `Infinity`, which is not JSON.
        value = float(text)
        if math.isinf(value):
            raise ValueError(f"{what} holds a number beyond a double: {text[:40]}")
        return value

    separators = (
        body.count(",") + body.count("[") + body.count("{")
        if isinstance(body, str)
        else body.count(b",") + body.count(b"[") + body.count(b"{")
    )
    if separators > MAX_VALUES:
        raise ValueError(f"{what} holds more than {MAX_VALUES:,} values, too many to decode")
    try:
        data = json.loads(body, parse_constant=_refuse_constant, parse_float=finite)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to read") from None
    if isinstance(data, dict | list):
        _check_depth(data, what)
    return data


def error_text(body: bytes | str) -> str:
    """Ollama's `{"error": ...}` text, else the raw body, like the official client."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = decode_json(raw, what="the error body")
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        text = str(data["error"])
    else:
        text = raw.strip() or "an empty body"
    if len(text) > _MAX_ERROR_TEXT:  # an error, not a document: keep messages readable
        text = text[:_MAX_ERROR_TEXT] + f"... ({len(text) - _MAX_ERROR_TEXT} more characters)"
    return text


def parse_object(body: bytes | str, *, what: str) -> dict[str, Any]:
    """Decode a JSON object; raises ValueError naming `what` when it is not one."""
    try:
        data = decode_json(body, what=what)
    except ValueError as exc:
        if str(exc).startswith(what):
            raise
        shown = body[:200] if isinstance(body, str) else body[:200].decode("utf-8", "replace")
        raise ValueError(f"{what} is not JSON: {shown!r}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object: {brief(data)}")
    return data


def parse_final_object(body: bytes, *, what: str) -> dict[str, Any]:
    """One JSON object, or the last line of an NDJSON body (a server that streamed anyway)."""
    try:
        return parse_object(body, what=what)
    except ValueError:
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) < 2:
            raise
        return parse_object(lines[-1], what=what)
