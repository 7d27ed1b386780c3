"""The proxy's methods: `requests.list` and `requests.cancel` (DESIGN.md, "The request path").

They read the proxy's table through :class:`RequestSource`, a narrow view the
daemon passes in (None when `[proxy] listen` is off: the list is empty, and
every cancel is 1012 ``request_not_found``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from n3d.api import shapes
from n3d.errors import RequestNotFound
from n3d.proxy.records import RequestRecord
from n3d.rpc.dispatch import Context, MethodTable, Param

__all__ = ["RequestSource", "add_request_methods", "request_row"]


class RequestSource(Protocol):
    """What the API may see of the proxy: its address, its requests, a cancel."""

    listen: str

    def requests(self) -> list[RequestRecord]: ...

    def cancel(self, request_id: str) -> bool: ...


def request_row(record: RequestRecord, now: float) -> shapes.ProxiedRequest:
    """One record as `requests.list` shows it; ``now`` is ``time.monotonic()``."""
    tokens = record.tokens_so_far()
    return {
        "id": record.id,
        "method": record.method,
        "route": record.route,
        "model": record.model or (record.meter.model if record.meter else None),
        "state": record.state,
        "started_at": record.started_at,
        "age_s": round(now - record.started, 3),
        "held_s": round(record.held_s, 3),
        "retried": record.retried,
        "ttft_s": None if record.ttft_s is None else round(record.ttft_s, 3),
        "chunks": record.chunks,
        "tokens": None
        if tokens is None
        else {
            "prompt": tokens["prompt"],
            "completion": tokens["completion"],
            "total": tokens["total"],
        },
        "server": record.server,
    }


def add_request_methods(table: MethodTable, source: Callable[[], RequestSource | None]) -> None:
    """Register `requests.list` and `requests.cancel` on ``table``."""

    @table.method(
        "requests.list",
        summary="Requests in flight through the proxy: held, sent or streaming, "
        "with age, TTFT and tokens so far.",
    )
    async def requests_list(ctx: Context, params: dict[str, Any]) -> shapes.RequestList:
        proxy = source()
        if proxy is None:
            return {"requests": [], "listen": None}
        now = time.monotonic()
        return {"requests": [request_row(r, now) for r in proxy.requests()], "listen": proxy.listen}

    @table.method(
        "requests.cancel",
        Param("id", str, required=True, description="a request id from requests.list"),
        summary="End a proxied request on both sides (the client gets Ollama's error shape).",
    )
    async def requests_cancel(ctx: Context, params: dict[str, Any]) -> shapes.RequestCancel:
        proxy = source()
        request_id = params["id"]
        if proxy is None or not proxy.cancel(request_id):
            raise RequestNotFound(request_id)
        return {"id": request_id, "cancelled": True}
