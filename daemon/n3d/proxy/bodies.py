"""Request bodies and header lists as the proxy forwards them.

A body up to :data:`REPLAY_BYTES` is read whole before it is sent: it can be sent
again (a retry) and its ``model`` read. A larger one (a blob upload, a chat with
big images) is streamed as it arrives, never held whole: it cannot be retried,
and its model is looked for in the first bytes only (clients write ``model``
first), else taken from the reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

__all__ = ["REPLAY_BYTES", "Body", "forwardable", "read_body"]

REPLAY_BYTES = 1 << 20
# RFC 9110 §7.6.1: connection-specific fields, never forwarded; `host` is kept.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_MODEL = re.compile(rb'"(?:model|name)"\s*:\s*"((?:[^"\\]|\\.){1,512})"')


class Body:
    """A request's body: ``data`` whole (replayable) or ``stream``; ``model`` if seen."""

    __slots__ = ("data", "model", "stream")

    def __init__(
        self, data: bytes | None, stream: AsyncIterator[bytes] | None, model: str | None
    ) -> None:
        self.data = data
        self.stream = stream
        self.model = model

    @property
    def replayable(self) -> bool:
        return self.stream is None


def _model_of_whole(data: bytes) -> str | None:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict):
        for key in ("model", "name"):
            value = obj.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _model_of_prefix(prefix: bytes) -> str | None:
    found = _MODEL.search(prefix)
    if found is None:
        return None
    try:
        value = json.loads(b'"' + found.group(1) + b'"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


async def read_body(request: web.BaseRequest) -> Body:
    """The body as :class:`Body` (module docstring); nothing at all when there is none."""
    if not request.body_exists:
        return Body(None, None, None)
    parts: list[bytes] = []
    size = 0
    while size <= REPLAY_BYTES:
        chunk = await request.content.readany()
        if not chunk:
            data = b"".join(parts)
            return Body(data, None, _model_of_whole(data) if data[:1] in b"{ \n\t" else None)
        parts.append(chunk)
        size += len(chunk)

    async def rest() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
        async for chunk in request.content.iter_any():
            yield chunk

    return Body(None, rest(), _model_of_prefix(b"".join(parts)[:65536]))


def forwardable(headers: Iterable[tuple[str, str]], *, keep_length: bool) -> list[tuple[str, str]]:
    """``headers`` without the hop-by-hop ones (and those ``Connection`` names).

    ``Content-Length`` stays only with ``keep_length``: a body sent whole gets its
    length from the client library, a streamed one keeps the client's.
    """
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    drop = HOP_BY_HOP | named
    if not keep_length:
        drop = drop | {"content-length"}
    return [(name, value) for name, value in pairs if name.lower() not in drop]
