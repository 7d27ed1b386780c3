"""The replies the proxy makes itself: Ollama's error shape, a broken stream's end, merged JSON.

Each in the shape a client of Ollama already reads: ``{"error": "..."}`` with
``application/json; charset=utf-8`` (a refusal, an unreachable server), the
in-stream error object on NDJSON (an SSE ``error`` event on ``/v1``) after a stream
broke, and a merged listing as plain JSON.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from aiohttp import web

__all__ = ["StreamedReply", "compact_json", "end_broken", "error_reply", "json_reply"]


def error_reply(status: int, message: str) -> web.Response:
    """Ollama's error shape: ``{"error": "..."}``, ``application/json; charset=utf-8``."""
    return web.Response(
        status=status,
        body=json.dumps({"error": message}, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
    )


def compact_json(document: dict[str, Any]) -> bytes:
    """``document`` as Ollama writes JSON: compact, UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def json_reply(body: bytes) -> web.Response:
    """A 200 answer of JSON ``body`` (:func:`compact_json`), as Ollama labels one."""
    return web.Response(body=body, content_type="application/json", charset="utf-8")


class StreamedReply(web.StreamResponse):
    """A streamed reply whose headers leave with its first bytes, in one write.

    Ollama itself sends its headers with the first chunk (Go flushes them lazily),
    so nothing a client can see changes, and a small answer costs one system
    call instead of two. (aiohttp's own ``web.Response`` does the same.)
    """

    _send_headers_immediately = False


def _trailer(content_type: str, message: str) -> bytes | None:
    """The last piece of a broken stream, in its own shape; None if it has none."""
    if content_type.startswith("text/event-stream"):
        data = json.dumps({"error": {"message": message, "type": "api_error"}})
        return f"event: error\ndata: {data}\n\n".encode()
    if "ndjson" in content_type or "json" in content_type:
        return json.dumps({"error": message}, separators=(",", ":")).encode() + b"\n"
    return None


async def end_broken(request: web.BaseRequest, reply: web.StreamResponse, message: str) -> None:
    """End a begun reply that cannot be completed: the error in its shape, or a cut."""
    trailer = _trailer(reply.headers.get("Content-Type", ""), message)
    with anyio.CancelScope(shield=True):
        try:
            if trailer is not None and reply.content_length is None:
                await reply.write(trailer)
                await reply.write_eof()
                return
        except (ConnectionResetError, OSError):
            pass
        reply.force_close()
        if request.transport is not None:
            request.transport.close()  # a declared length cannot be met: cut
