"""Putting a model into memory and taking it out: the calls behind load and unload.

Ollama has no load route: a generation with no prompt loads the model and answers
`done_reason: "load"`, one with `keep_alive: 0` unloads it (`"unload"`). A model
whose `/api/show` capabilities have `embedding` but not `completion` is loaded with
`POST /api/embed` and no input, which schedules it and answers
`{"model", "embeddings": []}` (server/routes.go EmbedHandler, v0.13.5 l. 681-691);
`/api/generate` answers such a model 400 "does not support generate" (l. 372-375).
Names arrive already checked (:class:`~n3d.ollama.client.OllamaClient` does it).
"""

from __future__ import annotations

import time
from typing import Any

from n3d.ollama.chunks import GenerateChunk
from n3d.ollama.decoding import brief
from n3d.ollama.duration import parse_keep_alive
from n3d.ollama.inference import KeepAlive, request_body
from n3d.ollama.session import OllamaSession
from n3d.ollama.types import LoadResult

__all__ = ["load", "unload"]


def _embeds_only(show: dict[str, Any]) -> bool:
    """True for a model Ollama runs only for embeddings (capabilities from /api/show;
    servers older than `capabilities` are taken to generate)."""
    caps = show.get("capabilities")
    return isinstance(caps, list) and "embedding" in caps and "completion" not in caps


def _embed_loaded(data: dict[str, Any]) -> dict[str, Any]:
    # Ollama's answer to an embed with no input: {"model": M, "embeddings": []}.
    if not isinstance(data.get("embeddings"), list):
        raise ValueError(f"no 'embeddings' list in {brief(data)}")
    return data


async def load(
    session: OllamaSession, name: str, keep_alive: KeepAlive, num_ctx: int
) -> LoadResult:
    """Load model ``name`` and wait until it is ready; `options.num_ctx` only when
    ``num_ctx`` is above 0, `keep_alive` only when given (0 is refused: unload)."""
    options = {"num_ctx": num_ctx} if num_ctx > 0 else None
    body = request_body(name, stream=None, options=options, keep_alive=keep_alive)
    if parse_keep_alive(keep_alive) == 0:
        raise ValueError("keep_alive=0 unloads the model; call unload() instead")
    started = time.perf_counter()
    show = await session.request_json(
        "POST", "/api/show", dict, model=name, body={"model": name}
    )
    if _embeds_only(show):
        await session.request_json(
            "POST",
            "/api/embed",
            _embed_loaded,
            model=name,
            body=body,
            long=True,
            num_ctx=num_ctx or None,
        )
        return LoadResult(name, time.perf_counter() - started, None, "load")
    chunk = await _generate_nothing(session, name, body, "load", num_ctx or None)
    stats = chunk.stats
    load_ns = stats.load_duration_ns if stats else None
    return LoadResult(
        model=name,
        duration_s=time.perf_counter() - started,
        load_duration_s=load_ns / 1e9 if load_ns is not None else None,
        done_reason=chunk.done_reason,
    )


async def unload(session: OllamaSession, name: str) -> None:
    """Unload model ``name`` now (`keep_alive: 0`); a no-op if it is not loaded."""
    body = request_body(name, stream=None, keep_alive=0)
    await _generate_nothing(session, name, body, "unload")


async def _generate_nothing(
    session: OllamaSession,
    model: str,
    body: dict[str, Any],
    expected: str,
    num_ctx: int | None = None,
) -> GenerateChunk:
    """A prompt-less `/api/generate`, which must answer `done_reason` ``expected``."""
    chunk = await session.request_json(
        "POST",
        "/api/generate",
        GenerateChunk.from_json,
        model=model,
        body=body,
        long=True,
        num_ctx=num_ctx,
    )
    # Servers before done_reason existed send none; anything else is not a load.
    if chunk.done_reason not in (expected, None):
        raise session.errors.malformed(
            ValueError(f"expected done_reason '{expected}', got '{chunk.done_reason}'"),
            model=model,
        )
    return chunk
