"""The async Ollama HTTP client n3d uses: ``OllamaClient``.

One pooled ``httpx.AsyncClient`` per server (:mod:`n3d.ollama.session`), generation
and its metrics (:mod:`n3d.ollama.inference`), and here the server and model
management calls: heartbeat, version, tags, ps, show, delete, pull, load, unload.

Model names are validated and normalised (`llama3` → `llama3:latest`) before any
request, so an invalid name raises :class:`~n3d.errors.InvalidModelName` without
touching the network. Every failure is an :class:`~n3d.errors.OllamaError` (see
:mod:`n3d.ollama.wire`); ``keep_alive`` is sent only when the caller passes one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any, TypeVar

from n3d.errors import OllamaError
from n3d.ollama.chunks import GenerateChunk
from n3d.ollama.decoding import brief
from n3d.ollama.duration import parse_keep_alive
from n3d.ollama.inference import Inference, KeepAlive, request_body
from n3d.ollama.types import (
    InstalledModel,
    LoadedModel,
    LoadResult,
    PullProgress,
    find_model,
    has_model,
)

__all__ = ["OllamaClient", "find_model", "has_model"]

_T = TypeVar("_T")


def _models(data: dict[str, Any], parse: Callable[[dict[str, Any]], _T]) -> list[_T]:
    entries = data.get("models") or []  # `[]`, never null, says Ollama; be lenient anyway
    if not isinstance(entries, list):
        raise ValueError(f"'models' should be a list, got {brief(entries)}")
    return [parse(entry) for entry in entries if isinstance(entry, dict)]


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


def _version(data: dict[str, Any]) -> str:
    version = data.get("version")
    if not isinstance(version, str):
        raise ValueError(f"no 'version' in {brief(data)}")
    return version


class OllamaClient(Inference):
    """Ollama's HTTP API at ``base_url``: management here, generate/chat inherited.

    ``OllamaClient(base_url, *, transport=None, timeout_s=5.0, num_ctx=0)``; use it
    as an async context manager or call :meth:`aclose`.
    """

    # -- server and model management ----------------------------------------------

    async def heartbeat(self, timeout_s: float | None = None) -> float:
        """Seconds `HEAD /` took (Ollama's own liveness probe); raises when it fails."""
        started = time.perf_counter()
        await self._call("HEAD", "/", timeout_s=timeout_s)
        return time.perf_counter() - started

    async def version(self) -> str:
        """The server's version, e.g. `0.6.8` (no leading `v`)."""
        return await self._json("GET", "/api/version", _version)

    async def tags(self) -> list[InstalledModel]:
        """Installed models, newest first."""
        return await self._json("GET", "/api/tags", lambda d: _models(d, InstalledModel.from_json))

    async def ps(self) -> list[LoadedModel]:
        """Models loaded in memory."""
        return await self._json("GET", "/api/ps", lambda d: _models(d, LoadedModel.from_json))

    async def show(self, model: str) -> dict[str, Any]:
        """`/api/show` for a model as Ollama answers it (details, model_info, capabilities)."""
        name = self._name(model)
        return await self._json("POST", "/api/show", dict, model=name, body={"model": name})

    async def delete(self, model: str) -> None:
        """Remove an installed model; raises ModelNotFound when it is not installed."""
        name = self._name(model)
        await self._call("DELETE", "/api/delete", model=name, body={"model": name})

    def pull(self, model: str) -> AsyncGenerator[PullProgress, None]:
        """Download a model, yielding Ollama's progress lines until `success`.

        The name is checked now; the request starts on the first iteration. A failure
        line raises (ModelNotFound for a name the registry lacks, else PullFailed), and
        so does a stream that ends without `success`. Closing the iterator early closes
        the connection; Ollama may finish the download anyway (research §1).
        """
        return self._pull(self._name(model))

    async def _pull(self, model: str) -> AsyncGenerator[PullProgress, None]:
        last: str | None = None
        succeeded = False

        def failure(status: int | None, text: str) -> OllamaError:
            return self._errors.pull_error(status, text, model=model)

        body = {"model": model, "stream": True}
        async with aclosing(self._stream("/api/pull", body, model=model, failure=failure)) as lines:
            async for data in lines:
                progress = self._parse(PullProgress.from_json, data, model)
                last = progress.status
                succeeded = succeeded or progress.status == "success"
                yield progress
        if not succeeded:
            raise self._errors.pull_incomplete(model, last)

    async def load(
        self, model: str, *, keep_alive: KeepAlive = None, num_ctx: int = 0
    ) -> LoadResult:
        """Load a model into memory (a warm-up) and wait until it is ready.

        Sends only the model, plus `keep_alive` when given and `options.num_ctx` when
        above 0: warm-ups must ask for the same options as real traffic, or Ollama
        reloads the model on the next request. Pass `keep_alive=0` to `unload` instead.

        A model whose `/api/show` capabilities have `embedding` but not `completion` is
        loaded with `POST /api/embed` and no input, which schedules it and answers
        `{"model", "embeddings": []}` (server/routes.go EmbedHandler, v0.13.5 l. 681-691);
        `/api/generate` answers such a model 400 "does not support generate" (l. 372-375).
        """
        name = self._name(model)
        options = {"num_ctx": num_ctx} if num_ctx > 0 else None
        body = request_body(name, stream=None, options=options, keep_alive=keep_alive)
        if parse_keep_alive(keep_alive) == 0:
            raise ValueError("keep_alive=0 unloads the model; call unload() instead")
        started = time.perf_counter()
        if _embeds_only(await self.show(name)):
            await self._json(
                "POST",
                "/api/embed",
                _embed_loaded,
                model=name,
                body=body,
                long=True,
                num_ctx=num_ctx or None,
            )
            return LoadResult(name, time.perf_counter() - started, None, "load")
        chunk = await self._load_request(name, body, "load", num_ctx or None)
        stats = chunk.stats
        load_ns = stats.load_duration_ns if stats else None
        return LoadResult(
            model=name,
            duration_s=time.perf_counter() - started,
            load_duration_s=load_ns / 1e9 if load_ns is not None else None,
            done_reason=chunk.done_reason,
        )

    async def unload(self, model: str) -> None:
        """Ask Ollama to unload a model now (`keep_alive: 0`); a no-op if not loaded."""
        name = self._name(model)
        await self._load_request(name, request_body(name, stream=None, keep_alive=0), "unload")

    async def _load_request(
        self, model: str, body: dict[str, Any], expected: str, num_ctx: int | None = None
    ) -> GenerateChunk:
        chunk = await self._json(
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
            raise self._errors.malformed(
                ValueError(f"expected done_reason '{expected}', got '{chunk.done_reason}'"),
                model=model,
            )
        return chunk
