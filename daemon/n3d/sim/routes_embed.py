"""Embedding routes: /api/embed and the legacy /api/embeddings.

Each input text is embedded by the model's runner (`POST /embedding`, within one
slot of its queue, as Ollama's `llmServer.Embedding`); an empty input loads the
model and answers `[]` without the runner, which is how Ollama preloads an
embedding model (research/ollama.md §1 Other endpoints; `server/routes.go`
EmbedHandler). `hang_inference` holds a request before it reaches the scheduler;
a client that leaves cancels its request.
"""

from __future__ import annotations

import time
from typing import Any

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name
from n3d.sim import llm
from n3d.sim.app import App, HttpError
from n3d.sim.bodies import get_bool, get_dict, get_str, keep_alive, parse_body
from n3d.sim.http import Request, Response
from n3d.sim.lease import Lease, installed, schedule
from n3d.sim.llm import RunnerError
from n3d.sim.store import InstalledModel
from n3d.sim.text import count_tokens
from n3d.sim.wire import go_quote

__all__ = ["embed", "embeddings"]


async def embed(app: App, req: Request, resp: Response) -> None:
    await app.until_gone(req, _embed(app, req, resp))


async def embeddings(app: App, req: Request, resp: Response) -> None:
    await app.until_gone(req, _embeddings(app, req, resp))


def _inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise HttpError(400, "invalid input type")


def _size(model: InstalledModel) -> int:
    return int(model.meta.get("embedding_length", 0) or 768)


def _not_found(model_text: str) -> HttpError:
    return HttpError(404, f"model {go_quote(model_text)} not found, try pulling it first")


async def _vectors(
    app: App, lease: Lease, model: InstalledModel, texts: list[str], size: int
) -> tuple[list[Any], int]:
    """Each text's vector from the runner, and the prompt tokens it counted."""
    await lease.take_slot()
    state = app.faults.state()
    sim = {
        "seed": model.name.display,
        "dimensions": size,
        "token_seconds": state.token_seconds * state.slow,
    }
    vectors: list[Any] = []
    counted = 0
    for text in texts:
        try:
            answer = await llm.embedding(lease.lm.port, {"content": text, "n3d_sim": sim})
        except RunnerError as exc:
            raise HttpError(500, str(exc)) from None
        vectors.append(answer.get("embedding", []))
        counted += int(answer.get("prompt_eval_count", 0))
    return vectors, counted


async def _embed(app: App, req: Request, resp: Response) -> None:
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
    model = installed(app, model_text, _not_found(model_text))
    await app.hold_inference()
    lease = await schedule(app, model, keep, options)
    try:
        if not inputs:
            lease.end()
            await app.reply_json(resp, 200, {"model": model_text, "embeddings": []})
            return
        if not truncate and max(count_tokens(text) for text in inputs) > lease.lm.num_ctx:
            raise HttpError(400, "the input length exceeds the context length")
        dims = body.get("dimensions")
        size = _size(model)
        if isinstance(dims, int) and 0 < dims < size:
            size = dims
        vectors, counted = await _vectors(app, lease, model, inputs, size)
        lease.end()
        await app.reply_json(
            resp,
            200,
            {
                "model": model_text,
                "embeddings": vectors,
                "total_duration": time.monotonic_ns() - started,
                "load_duration": lease.load_ns,
                "prompt_eval_count": counted,
            },
        )
    finally:
        lease.end()


async def _embeddings(app: App, req: Request, resp: Response) -> None:
    body = parse_body(req.body, "EmbeddingRequest")
    keep = keep_alive(body)
    model_text = get_str(body, "model", "EmbeddingRequest")
    prompt = get_str(body, "prompt", "EmbeddingRequest")
    options = get_dict(body, "options", "EmbeddingRequest")
    try:
        parse_model_name(model_text)
    except InvalidModelName:
        raise HttpError(400, "model is required") from None
    model = installed(app, model_text, _not_found(model_text))
    await app.hold_inference()
    lease = await schedule(app, model, keep, options)
    try:
        vector: Any = []
        if prompt:
            vectors, _ = await _vectors(app, lease, model, [prompt], _size(model))
            vector = vectors[0]
        lease.end()
        await app.reply_json(resp, 200, {"embedding": vector})
    finally:
        lease.end()
