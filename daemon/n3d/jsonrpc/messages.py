"""JSON-RPC 2.0 messages as n3d writes and reads them: shapes, codes, encode, decode.

Shared by both sides: the server's :mod:`~n3d.jsonrpc.protocol` (requests in,
replies out) and the clients' :mod:`~n3d.jsonrpc.session` (requests out, replies
in). It is on `n3ctl status`'s path, so it imports only ``json`` and ``math`` at
run time: no ``typing``, no ``dataclasses`` (several milliseconds each to import,
more than all of n3ctl's own modules).

- :func:`encode` writes compact UTF-8 JSON with ASCII escapes and no raw
  newline, so it fits either framing and every string is encodable (lone
  surrogates included); never ``NaN`` or ``Infinity``, which are not JSON.
- :func:`decode` reads what :func:`json.loads` reads from bytes (UTF-8/16/32 by
  detection, a BOM allowed) except ``NaN``, ``Infinity`` and ``-Infinity``.
- A request id must be a string, an integer, a *finite* number or null
  (:func:`valid_id`): JSON allows ``1e400``, which Python reads as infinity,
  and echoing it would write ``Infinity``.
"""

from __future__ import annotations

import json
import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    JsonObject: TypeAlias = dict[str, Any]
    RequestId: TypeAlias = str | int | float | None
else:  # the same names at run time, for annotations that are evaluated and for imports
    JsonObject = dict
    RequestId = str | int | float | None

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MESSAGES",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "REQUEST_CANCELLED",
    "SERVER_BUSY",
    "JsonObject",
    "RequestId",
    "decode",
    "encode",
    "error_response",
    "notification",
    "request",
    "result_response",
    "valid_id",
]

# The specification's codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# LSP's RequestCancelled (-32899..-32800 is LSP's band; this one is meant for us).
REQUEST_CANCELLED = -32800
# -32000..-32099 is the spec's "server error" range; LSP uses -32001/-32002 there.
SERVER_BUSY = -32000

MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    REQUEST_CANCELLED: "Request cancelled",
    SERVER_BUSY: "Server busy",
}


def request(method: str, params: Any, request_id: RequestId) -> JsonObject:
    """A request; ``params`` None is left out (the specification allows omitting them)."""
    message: JsonObject = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    message["id"] = request_id
    return message


def notification(method: str, params: Any = None) -> JsonObject:
    message: JsonObject = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def result_response(request_id: RequestId, result: Any) -> JsonObject:
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


def error_response(
    request_id: RequestId, code: int, message: str | None = None, data: Any = None
) -> JsonObject:
    """An error response; ``message`` defaults to the specification's wording for ``code``."""
    error: JsonObject = {"code": code, "message": message or MESSAGES.get(code, "Server error")}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": request_id}


def valid_id(value: Any) -> bool:
    """Whether ``value`` may be a request id (and so be echoed in a response)."""
    # bool is an int in Python but not a Number in JSON; 1e400 parses as inf.
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or (isinstance(value, str | int) and not isinstance(value, bool))


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; JSON (RFC 8259) does not.
    raise ValueError(f"{name} is not valid JSON")


# Made once: ``json.loads``/``json.dumps`` with options build a new coder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def decode(body: bytes) -> Any:
    """One message's JSON value; ValueError if it is not JSON, RecursionError if too deep.

    ValueError covers bad UTF-8, ``NaN``/``Infinity`` and over-long integers too.
    """
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


def encode(message: JsonObject | list[Any]) -> bytes:
    """Compact UTF-8 JSON with no raw newline, so it fits either framing.

    A response whose result cannot be encoded becomes an Internal error for the
    same id; a batch is encoded member by member for the same reason. A request
    or notification that cannot be encoded raises ValueError: nobody would answer
    it, so the caller's bug must surface where it was made.
    """
    if isinstance(message, list):
        return b"[" + b",".join(encode(m) for m in message) + b"]"
    try:
        return _ENCODER.encode(message).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        if "method" in message:
            raise ValueError(f"{message['method']!r}: its params are not JSON: {exc}") from exc
        fallback = error_response(
            message.get("id") if valid_id(message.get("id")) else None,
            INTERNAL_ERROR,
            "Internal error: the reply could not be encoded as JSON",
        )
        return _ENCODER.encode(fallback).encode()
