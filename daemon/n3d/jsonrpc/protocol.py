"""The server's side of JSON-RPC 2.0, sans-IO: one frame's bytes in, requests and replies out.

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
- A request id must be a string, an integer, a *finite* number or null
  (:func:`~n3d.jsonrpc.messages.valid_id`); anything else is ``-32600`` with
  ``id: null``, before the method runs.
- :func:`encode` never fails for a response and never writes anything but JSON
  (``allow_nan=False``, the fallback included): a result that is not JSON (NaN,
  an arbitrary object) becomes an Internal error response for the same id.

The message shapes, codes, :func:`encode` and :func:`decode` live in
:mod:`n3d.jsonrpc.messages` (shared with the clients' session, so kept free of
``dataclasses`` and ``typing``), framing (NDJSON or LSP ``Content-Length``) in
:mod:`n3d.jsonrpc.framing`; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from n3d.jsonrpc.framing import FrameError, Framer, Framing
from n3d.jsonrpc.messages import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MESSAGES,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    SERVER_BUSY,
    JsonObject,
    RequestId,
    decode,
    encode,
    error_response,
    notification,
    result_response,
    valid_id,
)

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MESSAGES",
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
    "decode",
    "encode",
    "error_response",
    "notification",
    "parse",
    "result_response",
]


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
    id_ok = valid_id(raw_id)
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
        value = decode(body)
    except (ValueError, RecursionError):
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

