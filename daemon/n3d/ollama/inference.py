"""Generation on Ollama (`/api/generate`, `/api/chat`): request bodies, and running them.

:class:`~n3d.ollama.client.OllamaClient` offers a generation two ways, like httpx's
``request`` and ``stream``: ``generate``/``chat`` answer the final chunk, and
``generate_stream``/``chat_stream`` yield every chunk as it arrives. Here are the
bodies they send, which carry only what the caller chose (no `keep_alive` unless
given, research §5), and :func:`final` and :func:`chunks`, which run one over an
:class:`~n3d.ollama.session.OllamaSession` and record the metrics of
:mod:`n3d.ollama.metering` (``ollama.request.duration``, ``ollama.tokens.*``,
``ollama.stream.*``).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from n3d.errors import OllamaError
from n3d.ollama.chunks import ChatChunk, GenerateChunk
from n3d.ollama.duration import parse_keep_alive
from n3d.ollama.metering import StreamMeter, record_request
from n3d.ollama.session import OllamaSession

__all__ = [
    "KeepAlive",
    "Messages",
    "Options",
    "chunks",
    "context_size",
    "final",
    "generation_body",
    "keep_alive_json",
    "request_body",
]

_Chunk = TypeVar("_Chunk", GenerateChunk, ChatChunk)
Options = Mapping[str, Any] | None
Messages = Sequence[Mapping[str, Any]]
Parse = Callable[[dict[str, Any]], _Chunk]

KeepAlive = str | float | int | None


def keep_alive_json(value: KeepAlive) -> str | float | int | None:
    """`keep_alive` as Ollama should receive it, or None to leave it out.

    Validated the way Ollama parses it, so a unit-less string (`"300"`) fails here
    with Ollama's own message (a ``KeepAliveError``, a ValueError) instead of a 400.
    Forever (`math.inf`) is sent as -1, because JSON has no infinity.
    """
    if value is None:
        return None
    parse_keep_alive(value)
    if isinstance(value, float) and math.isinf(value):
        return -1
    return value


def request_body(
    model: str,
    *,
    stream: bool | None,
    options: Mapping[str, Any] | None = None,
    keep_alive: KeepAlive = None,
    **fields: Any,
) -> dict[str, Any]:
    """A body for /api/generate or /api/chat carrying only what the caller chose.

    `keep_alive` is sent only when given: any request that carries it resets the
    model's timer, which is how the seed's constant "5m" undid `-1` warm-ups.
    `stream=None` leaves `stream` out (loads and unloads send just the model).
    """
    body: dict[str, Any] = {"model": model}
    body.update((k, v) for k, v in fields.items() if v is not None)
    if stream is not None:
        body["stream"] = stream
    if options:
        body["options"] = dict(options)
    ka = keep_alive_json(keep_alive)
    if ka is not None:
        body["keep_alive"] = ka
    return body


def context_size(options: Mapping[str, Any] | None, default: int) -> int:
    """The num_ctx a request asked for, for context-overflow messages."""
    value = (options or {}).get("num_ctx")
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def generation_body(
    model: str,
    *,
    stream: bool,
    options: Options,
    keep_alive: KeepAlive,
    extra: Mapping[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    """The body of a generation: ``fields`` (prompt or messages), then the caller's
    ``extra`` fields (system, format, think, images, raw, truncate, ...) as given.

    Whether it streams is the method's to say, so ``stream`` in ``extra`` is refused.
    """
    if "stream" in extra:
        raise TypeError(
            "'stream' is not an argument: generate() and chat() answer the final chunk, "
            "generate_stream() and chat_stream() yield every chunk"
        )
    return request_body(
        model, stream=stream, options=options, keep_alive=keep_alive, **fields, **extra
    )


async def final(
    session: OllamaSession,
    endpoint: str,
    model: str,
    body: dict[str, Any],
    parse: Parse[_Chunk],
    options: Options,
) -> _Chunk:
    """Run a non-streamed generation (``body["stream"]`` is false): its only object."""
    num_ctx = context_size(options, session.num_ctx)
    started = time.perf_counter()
    answer = await session.request_json(
        "POST", f"/api/{endpoint}", parse, model=model, body=body, long=True, num_ctx=num_ctx
    )
    record_request(endpoint, model, answer.stats, time.perf_counter() - started)
    return answer


async def chunks(
    session: OllamaSession,
    endpoint: str,
    model: str,
    body: dict[str, Any],
    parse: Parse[_Chunk],
    options: Options,
) -> AsyncGenerator[_Chunk, None]:
    """Run a streamed generation and yield its chunks; the request starts at the
    first iteration. A stream that ends before its ``done`` chunk raises."""
    num_ctx = context_size(options, session.num_ctx)

    def failure(status: int | None, text: str) -> OllamaError:
        return session.errors.status_error(status, text, model=model, num_ctx=num_ctx)

    meter = StreamMeter(endpoint, model, time.perf_counter())
    done = False
    lines = session.stream_objects(f"/api/{endpoint}", body, model=model, failure=failure)
    async with aclosing(lines):
        async for data in lines:
            chunk = session.parse(parse, data, model)
            meter.chunk()
            if chunk.done and not done:
                done = True
                # Before handing it on: consumers often stop iterating at `done`.
                meter.finish(chunk.stats, time.perf_counter())
            yield chunk
    if not done:
        raise session.errors.malformed(
            ValueError(f"the /api/{endpoint} stream ended before its final chunk"),
            model=model,
        )
