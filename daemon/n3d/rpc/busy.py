"""The goodbye an over-limit client gets: ``-32000 Server busy`` in its own framing.

The client's first frame is awaited briefly (``REFUSE_WAIT_S``) so the error can
carry that request's id and use its framing (NDJSON or LSP); then the stream is
closed, whatever happened.
"""

from __future__ import annotations

import anyio
import anyio.abc

from n3d.jsonrpc.framing import FrameError, Framer
from n3d.jsonrpc.protocol import SERVER_BUSY, encode, error_response, parse

__all__ = ["REFUSE_WAIT_S", "say_busy"]

REFUSE_WAIT_S = 1.0


async def say_busy(stream: anyio.abc.SocketStream, max_message_bytes: int, message: str) -> None:
    """Answer the client's first request (if it shows within a second) with ``message``."""
    framer = Framer(max_message_bytes)
    request_id = None
    items: list[bytes | FrameError] = []
    try:
        with anyio.move_on_after(REFUSE_WAIT_S):
            while True:
                items = framer.feed(await stream.receive())
                if items:
                    break
        if items and not isinstance(items[0], FrameError):
            incoming = parse(items[0])
            if not incoming.batch and incoming.requests:
                request_id = incoming.requests[0].id
        with anyio.move_on_after(REFUSE_WAIT_S):
            await stream.send(
                framer.frame(encode(error_response(request_id, SERVER_BUSY, message)))
            )
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
