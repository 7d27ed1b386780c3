"""Generation on Ollama (`/api/generate`, `/api/chat`): request bodies and the calls.

Bodies carry only what the caller chose (no `keep_alive` unless given, research §5).
Every generation records the metrics of :mod:`n3d.ollama.metering`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Literal, TypeVar, overload

from n3d.errors import OllamaError
from n3d.ollama.chunks import ChatChunk, GenerateChunk
from n3d.ollama.duration import parse_keep_alive
from n3d.ollama.metering import StreamMeter, record_request
from n3d.ollama.session import OllamaSession

__all__ = [
    "Inference",
    "KeepAlive",
    "context_size",
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


def context_size(options: Mapping[str, Any] | None, default: int) -> int:
    """The num_ctx a request asked for, for context-overflow messages."""
    value = (options or {}).get("num_ctx")
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class Inference(OllamaSession):
    """Generate and chat; the part of the client that runs models."""

    @overload
    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        stream: Literal[False] = False,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> GenerateChunk: ...
    @overload
    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        stream: Literal[True],
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> AsyncGenerator[GenerateChunk, None]: ...
    @overload
    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        stream: bool,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> GenerateChunk | AsyncGenerator[GenerateChunk, None]: ...
    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        stream: bool = False,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> GenerateChunk | AsyncGenerator[GenerateChunk, None]:
        """`/api/generate`: the final object, or with ``stream=True`` an async iterator
        of chunks (the request starts at its first iteration).

        ``extra`` fields (system, format, think, images, raw, truncate, ...) are sent
        as given; ``keep_alive`` only when not None.
        """
        name = self._name(model)
        body = request_body(
            name, stream=stream, options=options, keep_alive=keep_alive, prompt=prompt, **extra
        )
        return await self._infer("generate", name, body, GenerateChunk.from_json, options)

    @overload
    async def chat(
        self,
        model: str,
        messages: Messages,
        *,
        stream: Literal[False] = False,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> ChatChunk: ...
    @overload
    async def chat(
        self,
        model: str,
        messages: Messages,
        *,
        stream: Literal[True],
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> AsyncGenerator[ChatChunk, None]: ...
    @overload
    async def chat(
        self,
        model: str,
        messages: Messages,
        *,
        stream: bool,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> ChatChunk | AsyncGenerator[ChatChunk, None]: ...
    async def chat(
        self,
        model: str,
        messages: Messages,
        *,
        stream: bool = False,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> ChatChunk | AsyncGenerator[ChatChunk, None]:
        """`/api/chat`, like :meth:`generate`; messages are `{role, content, ...}`."""
        name = self._name(model)
        body = request_body(
            name,
            stream=stream,
            options=options,
            keep_alive=keep_alive,
            messages=[dict(m) for m in messages],
            **extra,
        )
        return await self._infer("chat", name, body, ChatChunk.from_json, options)

    async def _infer(
        self,
        endpoint: str,
        model: str,
        body: dict[str, Any],
        parse: Callable[[dict[str, Any]], _Chunk],
        options: Options,
    ) -> _Chunk | AsyncGenerator[_Chunk, None]:
        num_ctx = context_size(options, self.num_ctx)
        if body["stream"]:
            return self._infer_stream(endpoint, model, body, parse, num_ctx)
        started = time.perf_counter()
        final = await self._json(
            "POST", f"/api/{endpoint}", parse, model=model, body=body, long=True, num_ctx=num_ctx
        )
        record_request(endpoint, model, final.stats, time.perf_counter() - started)
        return final

    async def _infer_stream(
        self,
        endpoint: str,
        model: str,
        body: dict[str, Any],
        parse: Callable[[dict[str, Any]], _Chunk],
        num_ctx: int,
    ) -> AsyncGenerator[_Chunk, None]:
        def failure(status: int | None, text: str) -> OllamaError:
            return self._errors.status_error(status, text, model=model, num_ctx=num_ctx)

        meter = StreamMeter(endpoint, model, time.perf_counter())
        done = False
        lines = self._stream(f"/api/{endpoint}", body, model=model, failure=failure)
        async with aclosing(lines):
            async for data in lines:
                chunk = self._parse(parse, data, model)
                meter.chunk()
                if chunk.done and not done:
                    done = True
                    # Before handing it on: consumers often stop iterating at `done`.
                    meter.finish(chunk.stats, time.perf_counter())
                yield chunk
        if not done:
            raise self._errors.malformed(
                ValueError(f"the /api/{endpoint} stream ended before its final chunk"),
                model=model,
            )
