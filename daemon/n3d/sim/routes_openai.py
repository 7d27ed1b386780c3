"""The OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/embeddings,
/v1/models and /v1/models/{model}.

Ollama serves them with a middleware in front of its native handlers
(middleware/openai.go, v0.13.5; routes.go:1528-1533): the middleware decodes the
OpenAI body (a 400 `invalid_request_error` when it cannot), hands the native handler
the Ollama body it makes of it, and wraps the response writer so that what the
handler writes comes out in OpenAI's shape: a 200 body is translated, a streamed
NDJSON line becomes a `data: {...}` event (`text/event-stream`), the final one is
followed by a `usage` event when `stream_options.include_usage` is set and by
`data: [DONE]`, and any other status keeps its code with the error in OpenAI's
shape (type `api_error`, whatever the status). The simulator does the same: each
route here calls the native route with a translating :class:`Response`.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from n3d.sim import openai_out as replies
from n3d.sim.app import App, HttpError
from n3d.sim.bodies import parse_body
from n3d.sim.http import Request, Response
from n3d.sim.openai_in import OpenAIError, chat_body, completion_body, embed_body
from n3d.sim.routes_embed import embed
from n3d.sim.routes_infer import chat, generate
from n3d.sim.routes_models import show, tags
from n3d.sim.wire import go_json

__all__ = [
    "openai_chat",
    "openai_completions",
    "openai_embeddings",
    "openai_model",
    "openai_models",
]

_SSE = "text/event-stream"
_StatusErrorDefault = "something went wrong, please see the ollama server logs for details"


class _Translator:
    """What one route makes of the native handler's replies."""

    def whole(self, reply: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def events(self, reply: dict[str, Any]) -> list[Any]:
        return []


def _with_end(chunk: dict[str, Any], reply: dict[str, Any], include_usage: bool) -> list[Any]:
    """A stream's chunk, and after the last one the usage chunk (when asked) and
    `[DONE]`, as both of Ollama's OpenAI writers end a stream."""
    out: list[Any] = [chunk]
    if reply.get("done"):
        if include_usage:
            out.append(chunk | {"choices": [], "usage": replies.usage(reply)})
        out.append(b"[DONE]")
    return out


class _Translating(Response):
    """The wrapped writer: the native handler writes here, the client gets OpenAI's shapes."""

    def __init__(self, outer: Response, translator: _Translator) -> None:
        super().__init__(outer.writer, outer.request)
        self._outer = outer
        self._translator = translator

    async def send(self, status: int, body: bytes = b"", content_type: str | None = None) -> None:
        self.status = status
        if status != 200:
            # BaseWriter.writeError: the native body read as api.StatusError.
            try:
                message = json.loads(body).get("error") or _StatusErrorDefault
            except (ValueError, AttributeError):
                message = _StatusErrorDefault
            data = go_json(replies.error_body(500, str(message))) + b"\n"
            await self._outer.send(status, data, "application/json")
            return
        reply = self._translator.whole(json.loads(body))
        await self._outer.send(200, go_json(reply) + b"\n", "application/json")

    async def start_stream(self, status: int, content_type: str) -> None:
        self.status, self.streaming = status, True
        await self._outer.start_stream(status, _SSE)

    async def write(self, data: bytes) -> None:
        out = b""
        for line in data.splitlines():
            if line.strip():
                for event in self._translator.events(json.loads(line)):
                    shown = event if isinstance(event, bytes) else go_json(event)
                    out += b"data: " + shown + b"\n\n"
        await self._outer.write(out)

    async def end_stream(self) -> None:
        await self._outer.end_stream()


class _Chat(_Translator):
    def __init__(self, include_usage: bool) -> None:
        self.ident = replies.new_id("chatcmpl")
        self.include_usage = include_usage
        self.tool_call_sent = False

    def whole(self, reply: dict[str, Any]) -> dict[str, Any]:
        return replies.chat_completion(self.ident, reply)

    def events(self, reply: dict[str, Any]) -> list[Any]:
        chunk = replies.chat_chunk(self.ident, reply, self.tool_call_sent)
        self.tool_call_sent = self.tool_call_sent or bool(
            chunk["choices"][0]["delta"].get("tool_calls")
        )
        return _with_end(chunk, reply, self.include_usage)


class _Completion(_Translator):
    def __init__(self, include_usage: bool) -> None:
        self.ident = replies.new_id("cmpl")
        self.include_usage = include_usage

    def whole(self, reply: dict[str, Any]) -> dict[str, Any]:
        return replies.completion(self.ident, reply)

    def events(self, reply: dict[str, Any]) -> list[Any]:
        chunk = replies.completion_chunk(self.ident, reply)
        if self.include_usage:  # CompleteWriter: every chunk carries a zero usage
            chunk["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return _with_end(chunk, reply, self.include_usage)


class _Whole(_Translator):
    def __init__(self, translate: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self._translate = translate

    def whole(self, reply: dict[str, Any]) -> dict[str, Any]:
        return self._translate(reply)


async def _run(
    app: App,
    handler: Callable[[App, Request, Response], Awaitable[None]],
    req: Request,
    resp: _Translating,
) -> None:
    """The native handler behind the wrapped writer; its errors go through the wrapper too."""
    try:
        await handler(app, req, resp)
    except HttpError as exc:
        await app.reply_error(resp, exc)


async def _bind(app: App, req: Request, resp: Response, struct: str) -> dict[str, Any] | None:
    """The OpenAI body, or None once a 400 in OpenAI's shape has been sent."""
    try:
        return parse_body(req.body, f"openai.{struct}")
    except HttpError as exc:
        message = "EOF" if exc.message == "missing request body" else str(exc.message)
        await app.reply_json(resp, 400, replies.error_body(400, message))
        return None


async def _native(
    app: App,
    req: Request,
    resp: Response,
    struct: str,
    make: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[Request, dict[str, Any]] | None:
    """The native request the middleware hands on, with the OpenAI body it came from."""
    body = await _bind(app, req, resp, struct)
    if body is None:
        return None
    try:
        native = make(body)
    except OpenAIError as exc:
        await app.reply_json(resp, 400, replies.error_body(400, str(exc)))
        return None
    return dataclasses.replace(req, body=go_json(native)), body


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def openai_chat(app: App, req: Request, resp: Response) -> None:
    made = await _native(app, req, resp, "ChatCompletionRequest", chat_body)
    if made is not None:
        inner, body = made
        await _run(app, chat, inner, _Translating(resp, _Chat(_include_usage(body))))


async def openai_completions(app: App, req: Request, resp: Response) -> None:
    made = await _native(app, req, resp, "CompletionRequest", completion_body)
    if made is not None:
        inner, body = made
        translating = _Translating(resp, _Completion(_include_usage(body)))
        await _run(app, generate, inner, translating)


async def openai_embeddings(app: App, req: Request, resp: Response) -> None:
    made = await _native(app, req, resp, "EmbedRequest", embed_body)
    if made is not None:
        inner, body = made
        model, encoding = str(body.get("model") or ""), str(body.get("encoding_format") or "")
        translator = _Whole(lambda reply: replies.embedding_list(model, reply, encoding))
        await _run(app, embed, inner, _Translating(resp, translator))


async def openai_models(app: App, req: Request, resp: Response) -> None:
    await _run(app, tags, req, _Translating(resp, _Whole(replies.model_list)))


async def openai_model(app: App, req: Request, resp: Response) -> None:
    name = urllib.parse.unquote(req.params.get("model", ""))
    inner = dataclasses.replace(req, body=go_json({"name": name}))  # RetrieveMiddleware
    translating = _Translating(resp, _Whole(lambda r: replies.model_object(r, name)))
    await _run(app, show, inner, translating)
