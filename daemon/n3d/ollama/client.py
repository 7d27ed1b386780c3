"""The async Ollama HTTP client n3d uses: ``OllamaClient``, the whole API in one class.

It composes an :class:`~n3d.ollama.session.OllamaSession` (the one pooled
``httpx.AsyncClient`` per server, its timeouts, the caps on answers, the error
translation) and calls it. Server and model management: heartbeat, version, tags,
ps, show, delete, pull, load, unload; the liveness probe (:mod:`n3d.ollama.probe`).
Generation, like httpx's ``request`` and ``stream``: ``generate``/``chat`` answer the
final chunk, ``generate_stream``/``chat_stream`` yield every chunk (bodies and
metrics: :mod:`n3d.ollama.inference`). :meth:`OllamaClient.configure` takes reloaded
settings.

Model names are validated and normalised (`llama3` → `llama3:latest`) before any
request, so an invalid name raises :class:`~n3d.errors.InvalidModelName` without
touching the network. Every failure is an :class:`~n3d.errors.OllamaError` (see
:mod:`n3d.ollama.wire`); ``keep_alive`` is sent only when the caller passes one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self

import httpx

from n3d.errors import OllamaError
from n3d.ollama import inference, loading, probe
from n3d.ollama.chunks import ChatChunk, GenerateChunk, InferenceStats
from n3d.ollama.inference import KeepAlive, Messages, Options
from n3d.ollama.names import parse_model_name
from n3d.ollama.session import OllamaSession
from n3d.ollama.types import (
    InstalledModel,
    LoadedModel,
    LoadResult,
    PullProgress,
    find_model,
    has_model,
    parse_installed,
    parse_loaded,
    parse_version,
)
from n3d.ollama.wire import Warned

__all__ = ["OllamaClient", "find_model", "has_model"]


def _name(model: str) -> str:
    """The display form of a valid model name; raises InvalidModelName otherwise."""
    return parse_model_name(model).display


class OllamaClient:
    """Ollama's HTTP API at ``base_url``.

    ``transport`` replaces the network (tests pass ``httpx.MockTransport``);
    ``timeout_s`` bounds quick calls and every connect; ``num_ctx`` is the context
    size n3d configures (0 = Ollama's default), quoted in context-overflow errors
    and used by generations that do not set ``options.num_ctx``. ``warned`` is shared
    by the clients of one server (its warnings about unusable answers are paced
    together). Use it as an async context manager or call :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 5.0,
        num_ctx: int = 0,
        warned: Warned | None = None,
    ) -> None:
        self._session = OllamaSession(
            base_url, transport=transport, timeout_s=timeout_s, num_ctx=num_ctx, warned=warned
        )

    @property
    def base_url(self) -> str:
        return self._session.base_url

    @property
    def timeout_s(self) -> float:
        return self._session.timeout_s

    @property
    def num_ctx(self) -> int:
        return self._session.num_ctx

    def configure(self, *, timeout_s: float | None = None, num_ctx: int | None = None) -> None:
        """Take reloaded settings (None keeps one); calls started afterwards use them."""
        self._session.configure(timeout_s=timeout_s, num_ctx=num_ctx)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection; the client cannot be used afterwards."""
        await self._session.aclose()

    @property
    def is_closed(self) -> bool:
        return self._session.is_closed

    # -- server and model management ----------------------------------------------

    async def heartbeat(self, timeout_s: float | None = None) -> float:
        """Seconds `HEAD /` took (Ollama's own liveness probe); raises when it fails."""
        started = time.perf_counter()
        await self._session.request("HEAD", "/", timeout_s=timeout_s)
        return time.perf_counter() - started

    async def version(self) -> str:
        """The server's version, e.g. `0.6.8` (no leading `v`)."""
        return await self._session.request_json("GET", "/api/version", parse_version)

    async def tags(self) -> list[InstalledModel]:
        """Installed models, newest first."""
        return await self._session.request_json("GET", "/api/tags", parse_installed)

    async def ps(self) -> list[LoadedModel]:
        """Models loaded in memory."""
        return await self._session.request_json("GET", "/api/ps", parse_loaded)

    async def show(self, model: str) -> dict[str, Any]:
        """`/api/show` for a model as Ollama answers it (details, model_info, capabilities)."""
        name = _name(model)
        body = {"model": name}
        return await self._session.request_json("POST", "/api/show", dict, model=name, body=body)

    async def delete(self, model: str) -> None:
        """Remove an installed model; raises ModelNotFound when it is not installed."""
        name = _name(model)
        await self._session.request("DELETE", "/api/delete", model=name, body={"model": name})

    def pull(self, model: str) -> AsyncGenerator[PullProgress, None]:
        """Download a model, yielding Ollama's progress lines until `success`.

        The name is checked now; the request starts on the first iteration. A failure
        line raises (ModelNotFound for a name the registry lacks, else PullFailed), and
        so does a stream that ends without `success`. Closing the iterator early closes
        the connection; Ollama may finish the download anyway (research §1).
        """
        return self._pull(_name(model))

    async def _pull(self, model: str) -> AsyncGenerator[PullProgress, None]:
        last: str | None = None
        succeeded = False

        def failure(status: int | None, text: str) -> OllamaError:
            return self._session.errors.pull_error(status, text, model=model)

        body = {"model": model, "stream": True}
        lines = self._session.stream_objects("/api/pull", body, model=model, failure=failure)
        async with aclosing(lines):
            async for data in lines:
                progress = self._session.parse(PullProgress.from_json, data, model)
                last = progress.status
                succeeded = succeeded or progress.status == "success"
                yield progress
        if not succeeded:
            raise self._session.errors.pull_incomplete(model, last)

    async def load(
        self, model: str, *, keep_alive: KeepAlive = None, num_ctx: int = 0
    ) -> LoadResult:
        """Load a model into memory (a warm-up) and wait until it is ready.

        Sends only the model, plus `keep_alive` when given and `options.num_ctx` when
        above 0: warm-ups must ask for the same options as real traffic, or Ollama
        reloads the model on the next request. Pass `keep_alive=0` to `unload` instead.
        An embedding-only model is loaded through `/api/embed` (:mod:`n3d.ollama.loading`).
        """
        return await loading.load(self._session, _name(model), keep_alive, num_ctx)

    async def unload(self, model: str) -> None:
        """Ask Ollama to unload a model now (`keep_alive: 0`); a no-op if not loaded."""
        await loading.unload(self._session, _name(model))

    async def probe(self, model: str, *, embed: bool, timeout_s: float) -> InferenceStats:
        """One liveness probe of a loaded model (:mod:`n3d.ollama.probe`), bounded as a
        whole by ``timeout_s``: a one-token generate, or an embed when ``embed``."""
        return await probe.probe(self._session, _name(model), embed=embed, timeout_s=timeout_s)

    # -- generation ------------------------------------------------------------------

    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> GenerateChunk:
        """`/api/generate` with `stream: false`: the final chunk, with Ollama's counters.

        ``extra`` fields (system, format, think, images, raw, truncate, ...) are sent
        as given; ``keep_alive`` only when not None.
        """
        run = inference.generate_request(model, prompt, options, keep_alive, extra, stream=False)
        return await inference.final(self._session, run)

    def generate_stream(
        self,
        model: str,
        prompt: str,
        *,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> AsyncGenerator[GenerateChunk, None]:
        """`/api/generate` streamed: every chunk as it arrives, the last one ``done``.

        The name is checked now; the request starts on the first iteration. Wrap it
        in ``aclosing`` to stop early: closing it closes the connection.
        """
        run = inference.generate_request(model, prompt, options, keep_alive, extra, stream=True)
        return inference.chunks(self._session, run)

    async def chat(
        self,
        model: str,
        messages: Messages,
        *,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> ChatChunk:
        """`/api/chat` like :meth:`generate`; messages are `{role, content, ...}`."""
        run = inference.chat_request(model, messages, options, keep_alive, extra, stream=False)
        return await inference.final(self._session, run)

    def chat_stream(
        self,
        model: str,
        messages: Messages,
        *,
        options: Options = None,
        keep_alive: KeepAlive = None,
        **extra: Any,
    ) -> AsyncGenerator[ChatChunk, None]:
        """`/api/chat` streamed, like :meth:`generate_stream`."""
        run = inference.chat_request(model, messages, options, keep_alive, extra, stream=True)
        return inference.chunks(self._session, run)
