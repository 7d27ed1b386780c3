"""Inference routes: /api/generate, /api/chat, /api/embed and /api/embeddings.

Load (no prompt or messages) replies `done_reason: "load"` once the runner is up;
unload (`keep_alive: 0` and no prompt) replies `done_reason: "unload"` at once;
completions are short and deterministic, streamed as NDJSON unless `stream:false`,
and the final chunk carries Ollama's counters and nanosecond durations
(research/ollama.md §1; `server/routes.go` GenerateHandler, ChatHandler).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name
from n3d.sim.app import App, HttpError
from n3d.sim.bodies import get_bool, get_dict, get_str, keep_alive, parse_body
from n3d.sim.http import Request, Response
from n3d.sim.scheduler import Loaded, LoadError
from n3d.sim.store import InstalledModel
from n3d.sim.text import completion_words, count_tokens, embedding, token_ids
from n3d.sim.wire import go_json, go_quote, rfc3339_utc

__all__ = ["chat", "embed", "embeddings", "generate"]


def _installed(app: App, text: str, missing: HttpError) -> InstalledModel:
    try:
        name = parse_model_name(text)
    except InvalidModelName:
        raise missing from None
    model = app.store.find(name)
    if model is None:
        raise missing
    return model


async def _schedule(
    app: App, model: InstalledModel, keep: float | None, options: dict[str, Any]
) -> tuple[Loaded, int]:
    started = time.monotonic_ns()
    try:
        lm = await app.scheduler.acquire(model, keep, options)
    except LoadError as exc:
        raise HttpError(500, str(exc)) from None
    return lm, max(time.monotonic_ns() - started, 1)


async def generate(app: App, req: Request, resp: Response) -> None:
    await _inference(app, req, resp, chat=False)


async def chat(app: App, req: Request, resp: Response) -> None:
    await _inference(app, req, resp, chat=True)


def _chat_prompt(body: dict[str, Any]) -> tuple[str, int]:
    messages = body.get("messages")
    if messages is None:
        return "", 0
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise HttpError(
            400,
            "json: cannot unmarshal value into Go struct field "
            "ChatRequest.messages of type []api.Message",
        )
    text = "\n".join(str(m.get("content", "")) for m in messages)
    return text, len(messages)


async def _inference(app: App, req: Request, resp: Response, *, chat: bool) -> None:
    started = time.monotonic_ns()
    struct = "ChatRequest" if chat else "GenerateRequest"
    body = parse_body(req.body, struct)
    keep = keep_alive(body)
    model_text = get_str(body, "model", struct)
    options = get_dict(body, "options", struct)
    stream = get_bool(body, "stream", struct) is not False
    if chat:
        prompt, count = _chat_prompt(body)
        empty = count == 0
        if not model_text:
            raise HttpError(400, "model is required")
    else:
        prompt = get_str(body, "prompt", struct)
        empty = prompt == ""
    model = _installed(app, model_text, HttpError(404, f"model '{model_text}' not found"))

    def reply(reason: str, content: str = "", **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model_text, "created_at": rfc3339_utc()}
        if chat:
            out["message"] = {"role": "assistant", "content": content}
        else:
            out["response"] = content
        out["done"] = bool(reason)
        if reason:
            out["done_reason"] = reason
        out.update(extra)
        return out

    if empty and keep == 0:
        app.scheduler.expire(model)
        await app.reply_json(resp, 200, reply("unload"))
        return
    if "completion" not in model.capabilities:
        verb = "chat" if chat else "generate"
        raise HttpError(400, f"{go_quote(model_text)} does not support {verb}")
    lm, load_ns = await _schedule(app, model, keep, options)
    try:
        if empty:
            await app.reply_json(resp, 200, reply("load"))
            return
        pieces = completion_words(model.name.display, prompt)
        reason = "stop"
        limit = options.get("num_predict")
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces, reason = pieces[:limit], "length"
        prompt_count = count_tokens(prompt) + (10 if chat else 5)  # template tokens
        eval_started = time.monotonic_ns()
        token_s = app.faults.state().token_seconds
        if stream:
            await resp.start_stream(200, "application/x-ndjson")
            for piece in pieces:
                await app.faults_gate()
                if token_s:
                    await asyncio.sleep(token_s)
                await resp.write(go_json(reply("", piece)) + b"\n")
        elif token_s:
            await asyncio.sleep(token_s * len(pieces))
        now = time.monotonic_ns()
        metrics: dict[str, Any] = {}
        if not chat:
            metrics["context"] = token_ids(prompt + "".join(pieces), prompt_count + len(pieces))
        metrics.update(
            {
                "total_duration": now - started,
                "load_duration": load_ns,
                "prompt_eval_count": prompt_count,
                "prompt_eval_duration": prompt_count * 180_000,
                "eval_count": len(pieces),
                "eval_duration": max(now - eval_started, 1),
            }
        )
        final = reply(reason, "" if stream else "".join(pieces), **metrics)
        if stream:
            await resp.write(go_json(final) + b"\n")
            await resp.end_stream()
        else:
            await app.reply_json(resp, 200, final)
    finally:
        app.scheduler.release(lm)


def _inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise HttpError(400, "invalid input type")


async def embed(app: App, req: Request, resp: Response) -> None:
    started = time.monotonic_ns()
    body = parse_body(req.body, "EmbedRequest")
    keep = keep_alive(body)
    model_text = get_str(body, "model", "EmbedRequest")
    options = get_dict(body, "options", "EmbedRequest")
    truncate = get_bool(body, "truncate", "EmbedRequest") is not False
    try:
        parse_model_name(model_text)
    except InvalidModelName:
        raise HttpError(404, f"model '{model_text}' not found") from None
    inputs = _inputs(body.get("input"))
    not_found = HttpError(404, f"model {go_quote(model_text)} not found, try pulling it first")
    model = _installed(app, model_text, not_found)
    lm, load_ns = await _schedule(app, model, keep, options)
    try:
        if not inputs:
            await app.reply_json(resp, 200, {"model": model_text, "embeddings": []})
            return
        counts = [count_tokens(text) for text in inputs]
        if not truncate and max(counts) > lm.num_ctx:
            raise HttpError(400, "the input length exceeds the context length")
        dims = body.get("dimensions")
        size = int(model.meta.get("embedding_length", 0) or 768)
        if isinstance(dims, int) and 0 < dims < size:
            size = dims
        vectors = [embedding(model.name.display, text, size) for text in inputs]
        await app.reply_json(
            resp,
            200,
            {
                "model": model_text,
                "embeddings": vectors,
                "total_duration": time.monotonic_ns() - started,
                "load_duration": load_ns,
                "prompt_eval_count": sum(min(c, lm.num_ctx) for c in counts),
            },
        )
    finally:
        app.scheduler.release(lm)


async def embeddings(app: App, req: Request, resp: Response) -> None:
    body = parse_body(req.body, "EmbeddingRequest")
    keep = keep_alive(body)
    model_text = get_str(body, "model", "EmbeddingRequest")
    prompt = get_str(body, "prompt", "EmbeddingRequest")
    options = get_dict(body, "options", "EmbeddingRequest")
    try:
        parse_model_name(model_text)
    except InvalidModelName:
        raise HttpError(400, "model is required") from None
    not_found = HttpError(404, f"model {go_quote(model_text)} not found, try pulling it first")
    model = _installed(app, model_text, not_found)
    lm, _ = await _schedule(app, model, keep, options)
    try:
        size = int(model.meta.get("embedding_length", 0) or 768)
        vector = embedding(model.name.display, prompt, size) if prompt else []
        await app.reply_json(resp, 200, {"embedding": vector})
    finally:
        app.scheduler.release(lm)
