"""JSON-RPC 2.0 messages, sans-IO: bytes of one frame in, requests and replies out.

Nothing here touches a socket or a clock, so every rule of the specification is
tested by feeding bytes (tests/rpc/test_protocol.py):

- :func:`parse` turns one frame's body into an :class:`Incoming`: the valid
  requests and notifications to run, the error responses already decided for
  invalid members, and whether it was a batch.
- :meth:`Incoming.reply` assembles the answer once the requests have run: one
  response, an array for a batch, or ``None`` when nothing must be sent (a
  notification, an all-notification batch). An empty batch is a single
  Invalid Request; invalid JSON is a single Parse error with ``id: null``.
- Objects that are JSON-RPC *responses* (``result``/``error`` and no
  ``method``) are ignored: n3d never sends requests, and answering a response
  could start an endless exchange with a peer that answers errors too.
- ``"params": null`` is read as absent params: the specification wants an array
  or an object, but Emacs ``jsonrpc.el`` sends ``null`` for a nil argument and
  nothing is lost by being lenient.
- A request id must be a string, an integer, a *finite* number or null: JSON
  allows ``1e400``, which Python reads as infinity, and echoing it would write
  ``Infinity``, which is not JSON. Anything else is ``-32600`` with ``id: null``,
  before the method runs.
- :func:`encode` never fails for a response and never writes anything but JSON
  (``allow_nan=False``, the fallback included): a result that is not JSON (NaN,
  an arbitrary object) becomes an Internal error response for the same id.

Framing (NDJSON or LSP ``Content-Length``) lives in :mod:`n3d.jsonrpc.framing` and is
re-exported here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from n3d.jsonrpc.framing import FrameError, Framer, Framing

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "REQUEST_CANCELLED",
    "SERVER_BUSY",
    "FrameError",
    "Framer",
    "Framing",
    "Incoming",
    "JsonObject",
    "Request",
    "RequestId",
    "encode",
    "error_response",
    "notification",
    "parse",
    "result_response",
]

JsonObject: TypeAlias = dict[str, Any]
RequestId: TypeAlias = str | int | float | None

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


@dataclass(frozen=True, slots=True)
class Request:
    """A valid request (``is_notification`` False: it gets exactly one response) or notification."""

    method: str
    params: list[Any] | dict[str, Any] | None = None
    id: RequestId = None
    is_notification: bool = False


@dataclass(slots=True)
class Incoming:
    """One decoded frame: what to run and what is already answered."""

    requests: list[Request] = field(default_factory=list)
    errors: list[JsonObject] = field(default_factory=list)
    batch: bool = False

    def reply(self, responses: Iterable[JsonObject | None] = ()) -> JsonObject | list[Any] | None:
        """The message to send back, given the responses of :attr:`requests`.

        ``None`` entries (notifications) are skipped. A batch with nothing to
        return yields ``None``, never ``[]``, as the specification requires.
        """
        out = [*self.errors, *(r for r in responses if r is not None)]
        if self.batch:
            return out or None
        return out[0] if out else None


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


def notification(method: str, params: Any = None) -> JsonObject:
    message: JsonObject = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; JSON (RFC 8259) does not.
    raise ValueError(f"{name} is not valid JSON")


# Made once: ``json.loads``/``json.dumps`` with options build a new coder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _is_valid_id(value: Any) -> bool:
    # bool is an int in Python but not a Number in JSON; 1e400 parses as inf.
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or (isinstance(value, str | int) and not isinstance(value, bool))


# Shared objects for the Invalid Requests of a batch: a 1 MiB batch of `1,1,1,…` has
# 524 287 members, and a pair of dicts each was 190 MB. Replies are encoded, never mutated.
_INVALID_NULL = error_response(None, INVALID_REQUEST)
_INVALID_ERROR = _INVALID_NULL["error"]


def _validate(obj: Any) -> Request | JsonObject | None:
    """A Request, an error response for an invalid one, or None for a response object."""
    if not isinstance(obj, dict):
        return _INVALID_NULL
    if "method" not in obj and ("result" in obj or "error" in obj):
        return None
    raw_id = obj.get("id")
    id_ok = _is_valid_id(raw_id)
    method = obj.get("method")
    params = obj.get("params")
    if (
        obj.get("jsonrpc") != "2.0"
        or not isinstance(method, str)
        or not id_ok
        # "params": null is read as no params (Emacs jsonrpc.el sends it for nil).
        or (params is not None and not isinstance(params, list | dict))
    ):
        # The id is echoed when it could be read; otherwise it must be null.
        if not id_ok or raw_id is None:
            return _INVALID_NULL
        return {"jsonrpc": "2.0", "error": _INVALID_ERROR, "id": raw_id}
    return Request(method, params, raw_id, "id" not in obj)


def parse(body: bytes) -> Incoming:
    """Decode one frame's body (UTF-8 JSON) into requests and immediate errors."""
    try:
        # What json.loads does with bytes (UTF-8/16/32 by detection, BOM allowed).
        value = _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 and over-long integers; RecursionError deep nesting.
        return Incoming(errors=[error_response(None, PARSE_ERROR)])
    if isinstance(value, list):
        if not value:
            return Incoming(errors=[error_response(None, INVALID_REQUEST)])
        incoming = Incoming(batch=True)
        for member in value:
            _add(incoming, _validate(member))
        return incoming
    incoming = Incoming()
    _add(incoming, _validate(value))
    return incoming


def _add(incoming: Incoming, item: Request | JsonObject | None) -> None:
    if isinstance(item, Request):
        incoming.requests.append(item)
    elif item is not None:
        incoming.errors.append(item)


def encode(message: JsonObject | list[Any]) -> bytes:
    """Compact UTF-8 JSON with no raw newline, so it fits either framing.

    ASCII escapes make every string encodable (lone surrogates included). A
    response whose result cannot be encoded becomes an Internal error for the
    same id; a batch is encoded member by member for the same reason. A
    notification that cannot be encoded raises ValueError: it has no id to
    answer, so the caller's bug must surface where it was made.
    """
    if isinstance(message, list):
        return b"[" + b",".join(encode(m) for m in message) + b"]"
    try:
        return _ENCODER.encode(message).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        if "method" in message:
            raise ValueError(f"notification {message['method']!r} is not JSON: {exc}") from exc
        fallback = error_response(
            message.get("id") if _is_valid_id(message.get("id")) else None,
            INTERNAL_ERROR,
            "Internal error: the reply could not be encoded as JSON",
        )
        return _ENCODER.encode(fallback).encode()
