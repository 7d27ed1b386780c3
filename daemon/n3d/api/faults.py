"""The one error→code table: which JSON-RPC error each of n3d's exceptions becomes.

The domain raises the exceptions of :mod:`n3d.errors`, which know nothing of
JSON-RPC. Here each class gets its application code (DESIGN.md: outside
-32768..-32000) and the ``data {kind, model?, base_url?, suggestion?}`` it is
sent with; ``kind`` is the exception's own, the name it has in logs and events
too. :mod:`n3d.rpc.dispatch` answers with :func:`fault_of`, and ``rpc.discover``
lists :data:`CODES`, so a code is written once.

Rows are looked up in order, so a class comes before its base; a subclass
without a row of its own takes its base's code (a plain
:class:`~n3d.errors.OllamaError` is 1010 ``ollama_error``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from n3d.api.shapes import ErrorData
from n3d.errors import (
    ContextOverflow,
    InvalidModelName,
    ModelNotFound,
    NotManaged,
    OllamaError,
    OllamaNotInstalled,
    OllamaTimeout,
    OllamaUnreachable,
    PullFailed,
    RequestNotFound,
    ServerNotRunning,
    StateNotSaved,
    UnexpectedResponse,
    UnknownServer,
)

__all__ = ["CODES", "Fault", "code_of", "fault_of"]

Coded = OllamaError | StateNotSaved | RequestNotFound | UnknownServer

# Codes are part of the contract: never renumber one, add new ones at the end.
CODES: Mapping[type[Coded], int] = {
    OllamaUnreachable: 1001,
    ModelNotFound: 1002,
    InvalidModelName: 1003,
    PullFailed: 1004,
    OllamaTimeout: 1005,
    NotManaged: 1006,
    ContextOverflow: 1007,
    OllamaNotInstalled: 1008,
    ServerNotRunning: 1009,
    UnexpectedResponse: 1010,
    OllamaError: 1010,  # any other Ollama failure: the same kind, `ollama_error`
    UnknownServer: 1011,
    RequestNotFound: 1012,
    StateNotSaved: 1013,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """A JSON-RPC error object's three members."""

    code: int
    message: str
    data: ErrorData


def code_of(exc: BaseException) -> int | None:
    """The code ``exc`` is answered with; None when it is no application error."""
    return next((code for cls, code in CODES.items() if isinstance(exc, cls)), None)


def fault_of(exc: BaseException) -> Fault | None:
    """The error ``exc`` is answered with; None when it is no application error (a bug)."""
    code = code_of(exc)
    if code is None or not isinstance(exc, Coded):
        return None
    return Fault(code, exc.message, _data(exc))


def _data(exc: Coded) -> ErrorData:
    data: ErrorData = {"kind": exc.kind}
    if isinstance(exc, StateNotSaved):
        data["path"] = exc.path
        data["suggestion"] = exc.suggestion
        return data
    if isinstance(exc, UnknownServer):
        data["server"] = exc.server
        data["suggestion"] = exc.suggestion
        return data
    if isinstance(exc, RequestNotFound):
        data["id"] = exc.request_id
        data["suggestion"] = exc.suggestion
        return data
    if exc.model:
        data["model"] = exc.model
    if exc.base_url:
        data["base_url"] = exc.base_url
    if exc.suggestion:
        data["suggestion"] = exc.suggestion
    return data
