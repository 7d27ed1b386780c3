"""Generation on Ollama (`/api/generate`, `/api/chat`): request bodies, and running them.

:class:`~n3d.ollama.client.OllamaClient` offers a generation two ways, like httpx's
``request`` and ``stream``: ``generate``/``chat`` answer the final chunk, and
``generate_stream``/``chat_stream`` yield every chunk as it arrives. Here are the
bodies they send, which carry only what the caller chose (no `keep_alive` unless
given, research §5), each built as a :class:`Generation` by :func:`generate_request`
or :func:`chat_request`, and :func:`final` and :func:`chunks`, which run one over an
:class:`~n3d.ollama.session.OllamaSession` and record the metrics of
:mod:`n3d.ollama.metering` (``ollama.request.duration``, ``ollama.tokens.*``,
``ollama.stream.*``).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from n3d.errors import OllamaError
from n3d.ollama.chunks import ChatChunk, GenerateChunk
from n3d.ollama.duration import parse_keep_alive
from n3d.ollama.metering import StreamMeter, record_request
from n3d.ollama.names import parse_model_name
from n3d.ollama.session import OllamaSession

__all__ = [
    "Generation",
    "KeepAlive",
    "Messages",
    "Options",
    "chat_request",
    "chunks",
    "final",
    "generate_request",
    "keep_alive_json",
    "request_body",
]

_Chunk = TypeVar("_Chunk", GenerateChunk, ChatChunk)
Options = Mapping[str, Any] | None
Messages = Sequence[Mapping[str, Any]]

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


def _requested_num_ctx(options: Options) -> int | None:
    """The num_ctx a request asked for itself, quoted in its context-overflow errors."""
    value = (options or {}).get("num_ctx")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Generation(Generic[_Chunk]):
    """One generation to run: the route, the checked model name, the body, how to
    read a chunk, and the num_ctx it asked for (None: the session's)."""

    endpoint: str
    model: str
    body: dict[str, Any]
    parse: Callable[[dict[str, Any]], _Chunk]
    num_ctx: int | None


def _body(
    model: str, stream: bool, options: Options, keep_alive: KeepAlive, extra: Mapping[str, Any]
) -> dict[str, Any]:
    # Whether it streams is the method's to say, never an argument.
    if "stream" in extra:
        raise TypeError(
            "'stream' is not an argument: generate() and chat() answer the final chunk, "
            "generate_stream() and chat_stream() yield every chunk"
        )
    return request_body(model, stream=stream, options=options, keep_alive=keep_alive, **extra)


def generate_request(
    model: str,
    prompt: str,
    options: Options,
    keep_alive: KeepAlive,
    extra: Mapping[str, Any],
    *,
    stream: bool,
) -> Generation[GenerateChunk]:
    """`/api/generate` for ``model`` (checked: InvalidModelName before any request);
    ``extra`` fields (system, format, think, images, raw, ...) are sent as given."""
    name = parse_model_name(model).display
    body = _body(name, stream, options, keep_alive, {"prompt": prompt, **extra})
    return Generation("generate", name, body, GenerateChunk.from_json, _requested_num_ctx(options))


def chat_request(
    model: str,
    messages: Messages,
    options: Options,
    keep_alive: KeepAlive,
    extra: Mapping[str, Any],
    *,
    stream: bool,
) -> Generation[ChatChunk]:
    """`/api/chat` for ``model``, like :func:`generate_request`."""
    name = parse_model_name(model).display
    fields = {"messages": [dict(m) for m in messages], **extra}
    body = _body(name, stream, options, keep_alive, fields)
    return Generation("chat", name, body, ChatChunk.from_json, _requested_num_ctx(options))


async def final(session: OllamaSession, g: Generation[_Chunk]) -> _Chunk:
    """Run a generation whose body says `stream: false`: its only object."""
    started = time.perf_counter()
    path = f"/api/{g.endpoint}"
    answer = await session.request_json(
        "POST", path, g.parse, model=g.model, body=g.body, long=True, num_ctx=g.num_ctx
    )
    record_request(g.endpoint, g.model, answer.stats, time.perf_counter() - started)
    return answer


async def chunks(session: OllamaSession, g: Generation[_Chunk]) -> AsyncGenerator[_Chunk, None]:
    """Run a streamed generation and yield its chunks; the request starts at the
    first iteration. A stream that ends before its ``done`` chunk raises."""

    def failure(status: int | None, text: str) -> OllamaError:
        return session.errors.status_error(status, text, model=g.model, num_ctx=g.num_ctx)

    meter = StreamMeter(g.endpoint, g.model, time.perf_counter())
    done = False
    lines = session.stream_objects(f"/api/{g.endpoint}", g.body, model=g.model, failure=failure)
    async with aclosing(lines):
        async for data in lines:
            chunk = session.parse(g.parse, data, g.model)
            meter.chunk()
            if chunk.done and not done:
                done = True
                # Before handing it on: consumers often stop iterating at `done`.
                meter.finish(chunk.stats, time.perf_counter())
            yield chunk
    if not done:
        raise session.errors.malformed(
            ValueError(f"the /api/{g.endpoint} stream ended before its final chunk"),
            model=g.model,
        )
