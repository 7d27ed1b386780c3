"""How the bytes of Ollama's answers are read: as they arrive, and never past a cap.

Whoever binds Ollama's port first is the server n3d talks to (``auto`` mode adopts
whatever answers), so an answer may never end. Bodies are read with httpx's
streaming API and counted: a whole answer stops at ``MAX_ANSWER_BYTES``, a line of
an NDJSON stream at ``MAX_LINE_BYTES``, and either is a ValueError naming the cap
(UnexpectedResponse, 1010, once :mod:`n3d.ollama.wire` translates it). Leaving the
``async with client.stream(...)`` block with the body unread closes the connection
instead of returning it to the pool. Memory stays within a cap plus one network
read (64 KiB) while reading.

The caps, against what Ollama really sends: ``/api/tags`` with hundreds of models
is tens of KiB; ``/api/show``'s largest fields are the license and the template
(tens of KiB; without ``verbose`` Ollama empties every array of more than five
items, server/routes.go getModelData) and a tensor list of a few thousand entries;
a non-streamed generation carries its text, the deprecated ``context`` token list
(a few MiB at a 256K context) and, for image models, a base64 PNG (about 4 MiB at
the default 1024x1024). 64 MiB is ten times the largest of them. Streamed lines
are progress (`/api/pull`, a few hundred bytes) or a few tokens, except a final
chunk carrying ``context`` or an image: 16 MiB is four times that.

Compression is refused: n3d asks for ``identity``, and a gzip body of 256 KiB can
inflate to 256 MiB inside the decoder, before any count sees it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import httpx

from n3d.ollama.decoding import parse_object

__all__ = ["MAX_ANSWER_BYTES", "MAX_LINE_BYTES", "aiter_objects", "iter_lines", "read_body"]

MAX_ANSWER_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it arrives, undecoded; whole if the transport already holds it
    (``httpx.MockTransport`` answers built from bytes are read on creation)."""
    try:
        content = response.content
    except httpx.ResponseNotRead:
        async for chunk in response.aiter_raw():
            yield chunk
    else:
        yield content


def _refuse_compressed(response: httpx.Response, what: str) -> None:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ValueError(f"{what} is compressed ({encoding[:40]}), which n3d does not accept")


async def read_body(response: httpx.Response, *, what: str, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The whole body of a streamed ``response``; ValueError past ``limit`` bytes."""
    _refuse_compressed(response, what)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:  # h11 has checked it is one number
        # Refused unread: no need to take a lying server's word for the rest.
        raise ValueError(f"{what} declares {_mib(int(declared))}, more than {_mib(limit)}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in _chunks(response):
        size += len(chunk)
        if size > limit:
            raise ValueError(f"{what} is larger than {_mib(limit)}, n3d's limit for an answer")
        chunks.append(chunk)
    return b"".join(chunks)


async def iter_lines(
    chunks: AsyncIterable[bytes], *, what: str, limit: int = MAX_LINE_BYTES
) -> AsyncIterator[bytes]:
    """The ``\\n``-separated lines of ``chunks``; ValueError for one longer than ``limit``."""
    buffer = bytearray()
    async for chunk in chunks:
        scan = len(buffer)  # the bytes before hold no line break: look only at the new ones
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", scan)) >= 0:
            if end - start > limit:
                break
            yield bytes(buffer[start:end])
            start = scan = end + 1
        del buffer[:start]
        if len(buffer) > limit:
            raise ValueError(f"{what} is longer than {_mib(limit)}, n3d's limit for a line")
    if buffer:
        yield bytes(buffer)


async def aiter_objects(response: httpx.Response, *, path: str) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of the NDJSON answer to ``path``, one per non-blank line
    (ValueError if not)."""
    _refuse_compressed(response, f"the answer to {path}")
    what = f"a line of {path}"
    async for line in iter_lines(_chunks(response), what=what):
        if line.strip():
            yield parse_object(line, what=what)
