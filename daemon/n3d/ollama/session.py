"""One pooled HTTP session with an Ollama server: the transport the client composes.

:class:`OllamaSession` owns the ``httpx.AsyncClient``, the timeouts, the caps on
answers and the :class:`~n3d.ollama.wire.Translator`; :class:`~n3d.ollama.client.OllamaClient`
builds one and calls it, the way httpx's ``Client`` calls its transport.
:meth:`OllamaSession.configure` takes reloaded settings (``timeout_s``, ``num_ctx``):
calls started afterwards use them.

Quick calls are bounded by ``timeout_s`` as a whole: httpx's timeouts bound each
read, so a server sending a byte just within each would otherwise hold a call
forever. Streams (pulls, generations) and loads have no read timeout, because a
model load or a 40 GB download legitimately takes minutes; their caller bounds
progress (``anyio.fail_after`` around each step). Connecting, writing and waiting
for a pooled connection are always bounded by ``timeout_s``. Every body is read as
it arrives and capped (:mod:`n3d.ollama.bodies`). Every failure leaves here as an
:class:`~n3d.errors.OllamaError`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

import anyio
import httpx

from n3d import __version__
from n3d.errors import OllamaError
from n3d.ollama.bodies import aiter_objects, read_body
from n3d.ollama.decoding import error_text, parse_final_object
from n3d.ollama.wire import Translator, Warned

__all__ = ["Failure", "OllamaSession"]

_T = TypeVar("_T")
Failure = Callable[[int | None, str], OllamaError]

# A supervisor talks to one local server: a few keep-alive connections cover health
# checks and listings; the ceiling only guards against runaway concurrent streams.
_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=8, keepalive_expiry=30.0)


class OllamaSession:
    """Owns the one ``httpx.AsyncClient`` for ``base_url`` and translates its failures.

    ``transport`` replaces the network (tests pass ``httpx.MockTransport``);
    ``timeout_s`` bounds quick calls and every connect; ``num_ctx`` is the context
    size n3d configures (0 = Ollama's default), quoted in context-overflow errors.
    Proxy variables are ignored: a local supervisor never goes through a proxy.
    ``errors`` is the :class:`~n3d.ollama.wire.Translator` of this server, for
    callers that build an error of their own (a pull that ends without success).
    """

    timeout_s: float
    _quick: httpx.Timeout  # quick calls: every phase, and the whole call, within timeout_s
    _long: httpx.Timeout  # streams and loads: no read timeout (see the module's docstring)

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 5.0,
        num_ctx: int = 0,
        warned: Warned | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.errors = Translator(self.base_url, num_ctx, warned=warned)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            limits=_LIMITS,
            trust_env=False,
            # identity: a compressed body could inflate past any cap inside the decoder.
            headers={"User-Agent": f"n3d/{__version__}", "Accept-Encoding": "identity"},
        )
        self.configure(timeout_s=timeout_s)

    def configure(self, *, timeout_s: float | None = None, num_ctx: int | None = None) -> None:
        """Take new settings (a config reload); None keeps the current value.

        Calls started afterwards use them; a call or stream already under way keeps
        the limits it started with. The pool and its connections are kept.
        """
        if timeout_s is not None:
            self.timeout_s = timeout_s
            self._quick = httpx.Timeout(timeout_s)
            self._long = httpx.Timeout(None, connect=timeout_s, write=timeout_s, pool=timeout_s)
            self._http.timeout = self._quick
        if num_ctx is not None:
            self.errors.num_ctx = num_ctx

    @property
    def num_ctx(self) -> int:
        """The context size n3d configures (0 = Ollama's default)."""
        return self.errors.num_ctx

    async def aclose(self) -> None:
        """Close every pooled connection; the session cannot be used afterwards."""
        await self._http.aclose()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    async def request(
        self,
        method: str,
        path: str,
        *,
        model: str | None = None,
        body: dict[str, Any] | None = None,
        long: bool = False,
        timeout_s: float | None = None,
        num_ctx: int | None = None,
    ) -> bytes:
        """Send one request and read its answer; any answer but 2xx raises the matching
        OllamaError, and so does one larger than MAX_ANSWER_BYTES (1010).

        ``long`` lifts the read timeout and the deadline; ``timeout_s`` overrides the
        quick limit.
        """
        limit = self.timeout_s if timeout_s is None else timeout_s
        timeout = self._long if long else httpx.Timeout(limit)
        with (
            self.errors.entering(f"{method} {path}", model=model, timeout_s=limit),
            anyio.fail_after(None if long else limit),
        ):
            async with self._http.stream(method, path, json=body, timeout=timeout) as response:
                ok = response.is_success
                what = f"the {'' if ok else 'error '}answer to {path}"
                content = await read_body(response, what=what)
        if not ok:
            text = error_text(content)
            raise self.errors.status_error(response.status_code, text, model=model, num_ctx=num_ctx)
        return content

    async def request_json(
        self,
        method: str,
        path: str,
        parse: Callable[[dict[str, Any]], _T],
        *,
        model: str | None = None,
        body: dict[str, Any] | None = None,
        long: bool = False,
        num_ctx: int | None = None,
    ) -> _T:
        """Send one request and parse its JSON object answer with ``parse``."""
        content = await self.request(
            method, path, model=model, body=body, long=long, num_ctx=num_ctx
        )
        with self.errors.entering(f"{method} {path}", model=model):
            return parse(parse_final_object(content, what=f"the answer to {path}"))

    async def stream_objects(
        self, path: str, body: dict[str, Any], *, model: str, failure: Failure
    ) -> AsyncGenerator[dict[str, Any], None]:
        """POST and yield the JSON objects of the NDJSON answer.

        An error status, or an `{"error": ...}` line once the status 200 is long sent,
        raises what ``failure(status or None, text)`` builds. Wrap it in ``aclosing``:
        the response closes when the generator does.
        """
        limit, timeout = self.timeout_s, self._long  # kept for the whole stream
        with self.errors.entering(f"POST {path}", model=model, timeout_s=limit):
            async with self._http.stream("POST", path, json=body, timeout=timeout) as r:
                if not r.is_success:
                    # Ollama's error answers come whole and at once: bounded like a quick call.
                    with anyio.fail_after(limit):
                        content = await read_body(r, what=f"the error answer to {path}")
                    raise failure(r.status_code, error_text(content))
                async for data in aiter_objects(r, path=path):
                    if "error" in data:
                        raise failure(None, str(data["error"]))
                    yield data

    def parse(self, parse: Callable[[dict[str, Any]], _T], data: dict[str, Any], model: str) -> _T:
        """``parse(data)``, with a missing or mistyped field as UnexpectedResponse."""
        with self.errors.entering("parsing an answer", model=model):
            return parse(data)
