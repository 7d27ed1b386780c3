"""The method table: named handlers with declared params, called with a :class:`Context`.

A handler is ``async def handler(ctx: Context, params: dict[str, Any]) -> Any``
(by convention n3d's methods return a JSON object). :meth:`MethodTable.call`
turns one :class:`~n3d.jsonrpc.protocol.Request` into its response:

- params are checked against the declared :class:`Param` list: named params by
  name (unknown names rejected), positional params mapped in declared order;
  missing required params and wrong JSON types give ``-32602`` with a message
  naming the parameter (and ``data.param``). ``workDoneToken`` is taken out of
  named params before the check and becomes ``ctx.progress``'s token.
- :class:`MethodError` → its own code; an application error of :mod:`n3d.errors`
  → the code and ``data`` of the one table, :mod:`n3d.api.faults`; anything else
  → ``-32603 Internal error`` with the traceback logged, never sent.
- each call emits the metric ``n3d.rpc.duration`` (seconds, tag ``method``).

Cancellation is not handled here: the connection's runner
(:mod:`n3d.rpc.running`) owns the cancel scopes and answers -32800 (it is the one
that knows a ``$/cancelRequest`` or ``window/workDoneProgress/cancel`` arrived).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import structlog

from n3d.api.faults import fault_of
from n3d.errors import root_cause
from n3d.jsonrpc.protocol import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    JsonObject,
    Request,
    RequestId,
    error_response,
    notification,
    result_response,
)
from n3d.metrics import metric

__all__ = ["Context", "Handler", "Method", "MethodError", "MethodTable", "Param", "Session"]

log = structlog.get_logger(__name__)

PROGRESS_KINDS = frozenset({"begin", "report", "end"})
_JSON_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}


class MethodError(Exception):
    """Raise from a handler to answer with an explicit JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class Session(Protocol):
    """What a handler's context needs from its connection (the server implements it)."""

    @property
    def id(self) -> int: ...

    def send(self, message: JsonObject) -> None:
        """Queue a message without waiting; a full queue drops the connection, not the caller."""

    def subscribe(self, topics: frozenset[str] | None) -> None:
        """Receive ``event`` notifications for ``topics`` (None: every topic)."""

    def unsubscribe(self) -> None: ...


class Context:
    """What a handler may do besides returning: report progress, notify, subscribe.

    ``progress`` and ``notify`` queue without blocking; progress is dropped when
    the request carried no ``workDoneToken`` or its response has been sent.
    """

    __slots__ = ("_began", "_done", "method", "progress_token", "request_id", "session")

    def __init__(
        self, session: Session, method: str, request_id: RequestId, progress_token: Any = None
    ) -> None:
        self.session = session
        self.method = method
        self.request_id = request_id
        self.progress_token: str | int | None = progress_token
        self._began = False
        self._done = False

    @property
    def connection_id(self) -> int:
        return self.session.id

    async def progress(self, value: Mapping[str, Any]) -> None:
        """Send LSP ``$/progress {token, value}``; ``value["kind"]`` is begin, report or end."""
        if value.get("kind") not in PROGRESS_KINDS:
            raise ValueError(f"progress kind must be begin, report or end: {value!r}")
        if self.progress_token is None or self._done:
            return
        self._began = value["kind"] != "end"
        self.session.send(
            notification("$/progress", {"token": self.progress_token, "value": dict(value)})
        )

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a server→client notification on this connection."""
        self.session.send(notification(method, params))

    def subscribe(self, topics: Iterable[str] | None = None) -> None:
        self.session.subscribe(None if topics is None else frozenset(topics))

    def unsubscribe(self) -> None:
        self.session.unsubscribe()

    def finish(self) -> None:
        """Close progress before the response: an unfinished ``begin`` gets its ``end``."""
        if self._began and self.progress_token is not None:
            self.session.send(
                notification("$/progress", {"token": self.progress_token, "value": {"kind": "end"}})
            )
        self._began, self._done = False, True


Handler: TypeAlias = Callable[[Context, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter: JSON types accepted (Python ``str``/``int``/...), required or not."""

    name: str
    types: type | tuple[type, ...]
    required: bool = False
    description: str = ""

    def accepts(self, value: Any) -> bool:
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        if isinstance(value, bool):
            return bool in types  # a JSON boolean is not a JSON number
        if isinstance(value, int) and float in types:
            return True
        return isinstance(value, types)

    @property
    def type_names(self) -> list[str]:
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        if float in types:  # "number" already includes integers
            types = tuple(t for t in types if t is not int)
        return [_JSON_TYPE_NAMES.get(t, t.__name__) for t in types]


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    handler: Handler
    params: tuple[Param, ...] = ()
    summary: str = ""
    by_name: Mapping[str, Param] = field(default_factory=dict)

    def bind(self, params: list[Any] | dict[str, Any] | None) -> dict[str, Any]:
        """Validated named params; raises MethodError(-32602) naming the parameter."""
        if params is None:
            params = {}
        elif isinstance(params, list):
            if len(params) > len(self.params):
                raise _invalid(
                    None,
                    f"expected at most {len(self.params)} positional params, got {len(params)}",
                )
            params = {p.name: v for p, v in zip(self.params, params, strict=False)}
        for name, value in params.items():
            spec = self.by_name.get(name)
            if spec is None:
                raise _invalid(name, f"unknown parameter '{name}'")
            if not spec.accepts(value):
                got = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
                raise _invalid(name, f"'{name}' must be {' or '.join(spec.type_names)}, got {got}")
        for spec in self.params:
            if spec.required and spec.name not in params:
                raise _invalid(spec.name, f"missing required parameter '{spec.name}'")
        return params


def _invalid(param: str | None, detail: str) -> MethodError:
    return MethodError(
        INVALID_PARAMS, f"Invalid params: {detail}", {"param": param} if param else None
    )


class MethodTable:
    """Method name → :class:`Method`; the one source of truth for dispatch and ``rpc.discover``."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def add(
        self, name: str, handler: Handler, params: Sequence[Param] = (), *, summary: str = ""
    ) -> None:
        if name in self._methods:
            raise ValueError(f"method {name!r} is already registered")
        by_name = {p.name: p for p in params}
        self._methods[name] = Method(name, handler, tuple(params), summary, by_name)

    def method(self, name: str, *params: Param, summary: str = "") -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def register(handler: Handler) -> Handler:
            self.add(name, handler, params, summary=summary)
            return handler

        return register

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def __iter__(self) -> Iterator[Method]:
        return iter(self._methods.values())

    def __len__(self) -> int:
        return len(self._methods)

    async def call(self, session: Session, request: Request) -> JsonObject | None:
        """Run ``request``: its response, or None for a notification; raises only cancellation."""
        ctx: Context | None = None
        started = time.perf_counter()
        method = self._methods.get(request.method)
        try:
            if method is None:
                raise MethodError(METHOD_NOT_FOUND, "Method not found")
            params = request.params
            token = None
            if isinstance(params, dict) and "workDoneToken" in params:
                params = dict(params)
                token = params.pop("workDoneToken")
                if not isinstance(token, str | int) or isinstance(token, bool):
                    raise _invalid("workDoneToken", "'workDoneToken' must be string or integer")
            bound = method.bind(params)
            ctx = Context(session, request.method, request.id, token)
            response = result_response(request.id, await method.handler(ctx, bound))
        except Exception as exc:  # every failure becomes a JSON-RPC error
            # A handler's own task group wraps its one failure in a group: answer with it.
            response = self._error(request, root_cause(exc))
        finally:
            if ctx is not None:
                ctx.finish()
            if method is not None:
                metric(
                    "n3d.rpc.duration",
                    time.perf_counter() - started,
                    "s",
                    log_level="debug",  # one per call: aggregated, logged only at debug
                    method=request.method,
                )
        return None if request.is_notification else response

    @staticmethod
    def _error(request: Request, exc: BaseException) -> JsonObject:
        if isinstance(exc, MethodError):
            return error_response(request.id, exc.code, exc.message, exc.data)
        fault = fault_of(exc)
        if fault is not None:
            return error_response(request.id, fault.code, fault.message, fault.data)
        log.error("rpc.internal_error", method=request.method, exc_info=exc)
        return error_response(request.id, INTERNAL_ERROR, f"Internal error in {request.method}")
