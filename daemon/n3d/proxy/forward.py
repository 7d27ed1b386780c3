"""One proxied request, from the client's bytes to Ollama and back (DESIGN.md, "The request path").

:meth:`Forwarder.handle` is the aiohttp handler for every method and path:

1. the body is read (whole up to a MiB, else streamed: :mod:`n3d.proxy.bodies`)
   and a record opened;
2. the gate (:mod:`n3d.proxy.gate`) lets it go, holds it while the server starts
   or restarts (``hold_timeout``), or refuses it: 503 ``{"error": "..."}``;
3. it is sent. A connection that fails before the first byte of the answer is
   held and sent once more to the restarted server (``retry``), except on routes
   with side effects and for bodies too large to replay: then 502;
4. status and headers (hop-by-hop aside) go back as they came, and every read of
   the answer is written at once: NDJSON lines and SSE events are flushed as they
   come. The meter reads each piece after it is written;
5. a stream that breaks after it began ends with Ollama's own in-stream error
   ``{"error": "..."}`` (an SSE ``error`` event on ``/v1``); a reply of declared
   length that breaks is cut with its connection, never completed silently.

Foreign errors (aiohttp's, OSError) are translated here, where they enter.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import anyio
from aiohttp import web
from yarl import URL

from n3d.proxy.bodies import Body, forwardable, read_body
from n3d.proxy.gate import Gate, Verdict, refusal
from n3d.proxy.meter import ReplyMeter
from n3d.proxy.records import RequestRecord, RequestTable
from n3d.proxy.routes import NO_RETRY, is_inference, route_of
from n3d.redact import redact_url

__all__ = ["Forwarder", "ProxyOptions", "error_reply"]

# Failures of the upstream connection, as aiohttp and the OS report them.
_UPSTREAM_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
_OUTPUT_EVERY_S = 1.0  # liveness needs "bytes within probe_interval", not every chunk


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """The `[proxy]` keys the forwarder reads per request (a reload applies at once)."""

    hold_timeout_s: float
    drain_timeout_s: float
    retry: bool


def error_reply(status: int, message: str) -> web.Response:
    """Ollama's error shape: ``{"error": "..."}``, ``application/json; charset=utf-8``."""
    return web.Response(
        status=status,
        body=json.dumps({"error": message}, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
    )


class _Reply(web.StreamResponse):
    """A streamed reply whose headers leave with its first bytes, in one write.

    Ollama itself sends its headers with the first chunk (Go flushes them lazily),
    so nothing a client can see changes, and a small answer costs one system
    call instead of two. (aiohttp's own ``web.Response`` does the same.)
    """

    _send_headers_immediately = False


def _trailer(content_type: str, message: str) -> bytes | None:
    """The last piece of a broken stream, in its own shape; None if it has none."""
    if content_type.startswith("text/event-stream"):
        data = json.dumps({"error": {"message": message, "type": "api_error"}})
        return f"event: error\ndata: {data}\n\n".encode()
    if "ndjson" in content_type or "json" in content_type:
        return json.dumps({"error": message}, separators=(",", ":")).encode() + b"\n"
    return None


class Forwarder:
    """The handler; owns the upstream client session (one pool to the server)."""

    def __init__(
        self,
        base_url: str,
        gate: Gate,
        table: RequestTable,
        options: Callable[[], ProxyOptions],
        on_output: Callable[[str], None],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.gate = gate
        self.table = table
        self.options = options
        self.on_output = on_output
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            # No total timeout: a cold load or a long generation takes minutes, and
            # a client that gives up closes its side (the handler is cancelled).
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
            auto_decompress=False,  # bodies pass as they are, gzip included
            cookie_jar=aiohttp.DummyCookieJar(),  # never keep one client's cookies for another
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            trust_env=False,  # the server is local: no HTTP_PROXY detour
        )
        # aiohttp resends GET/PUT/DELETE… once when a connection drops (RFC 9112
        # §9.3.1), and DELETE /api/delete is a side effect. The proxy's own retry
        # policy is the only one; aiohttp's test client turns it off the same way.
        if hasattr(self.session, "_retry_connection"):
            self.session._retry_connection = False

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        route = route_of(request.path)
        body = await read_body(request)
        record = self.table.open(request.method, route, body.model)
        sent = [False]  # whether the record counts as in flight when it ends
        try:
            reply: web.StreamResponse | None = None
            with record.cancel_scope:
                reply = await self._forward(request, record, body, sent)
            if not record.cancelled:
                assert reply is not None
                return reply
            record.error, record.error_kind = "cancelled through n3d (requests.cancel)", "cancelled"
            if record.reply is not None and record.reply.prepared:
                await self._end_broken(request, record.reply, record.error)
                return record.reply
            record.status = 503
            return error_reply(503, f"request {record.id} was {record.error}")
        except ConnectionResetError:  # writing to a client that has gone
            record.error, record.error_kind = "client closed the connection", "client_gone"
            return record.reply or web.Response()
        except asyncio.CancelledError:  # aiohttp: the client closed its connection
            record.error, record.error_kind = "client closed the connection", "client_gone"
            raise
        finally:
            self.table.finish(record, was_sent=sent[0])

    async def _forward(
        self, request: web.BaseRequest, record: RequestRecord, body: Body, sent: list[bool]
    ) -> web.StreamResponse:
        options = self.options()
        record.state = "held"
        verdict, snap, held_s = await self.gate.admit(options.hold_timeout_s)
        record.held_s = held_s
        if verdict is not Verdict.GO:
            return self._refused(record, refusal(snap, waited_s=held_s if held_s else None))
        self.table.sent(record)
        sent[0] = True
        upstream: aiohttp.ClientResponse | None = None
        while upstream is None:
            try:
                upstream = await self._send(request, body)
            except _UPSTREAM_ERRORS as exc:
                if record.retried or not self._may_retry(record, body, options):
                    return self._unreachable(record, exc)
                record.retried = True
                record.state = "held"
                self.table.unsent(record)
                sent[0] = False
                started = time.monotonic()
                snap = await self.gate.changed(snap, options.hold_timeout_s)
                record.held_s += time.monotonic() - started
                if self.gate.verdict(snap) is Verdict.REFUSE:
                    return self._refused(record, refusal(snap))
                self.table.sent(record)
                sent[0] = True
        try:
            return await self._relay(request, record, upstream)
        finally:
            upstream.close()  # a finished body went back to the pool already

    def _may_retry(self, record: RequestRecord, body: Body, options: ProxyOptions) -> bool:
        return options.retry and record.route not in NO_RETRY and body.replayable

    async def _send(self, request: web.BaseRequest, body: Body) -> aiohttp.ClientResponse:
        assert self.session is not None, "open() first"
        headers = forwardable(request.headers.items(), keep_length=not body.replayable)
        return await self.session.request(
            request.method,
            URL(self.base_url + request.raw_path, encoded=True),
            headers=headers,
            data=body.data if body.replayable else body.stream,
            allow_redirects=False,
            compress=None,
        )

    async def _relay(
        self, request: web.BaseRequest, record: RequestRecord, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        record.status = upstream.status
        content_type = upstream.headers.get("Content-Type", "")
        reply = _Reply(status=upstream.status, reason=upstream.reason)
        for name, value in forwardable(upstream.headers.items(), keep_length=True):
            reply.headers.add(name, value)
        meter = record.meter = ReplyMeter(content_type, inference=is_inference(record.route))
        record.stream = "ndjson" in content_type or content_type.startswith("text/event-stream")
        await reply.prepare(request)
        record.reply = reply
        record.state = "streaming"
        last_output = 0.0
        chunks = upstream.content.iter_any().__aiter__()
        while True:
            try:
                data = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except _UPSTREAM_ERRORS as exc:
                message = (
                    f"Ollama server at {redact_url(self.base_url)} stopped while answering "
                    f"({type(exc).__name__}). Suggestion: send the request again"
                )
                record.error, record.error_kind = message, "stream_broken"
                await self._end_broken(request, reply, message)
                return reply
            await reply.write(data)  # ConnectionResetError: the client has gone (handle)
            had_content = meter.content
            meter.feed(data)
            now = time.monotonic()
            if meter.content and not had_content:
                record.content_at = now
                record.ttft_s = now - record.started
            if now - last_output >= _OUTPUT_EVERY_S:
                last_output = now
                self._output(record, meter)
        had_content = meter.content
        meter.close()  # a JSON reply without a newline is read now
        if meter.content and not had_content:
            record.content_at = time.monotonic()
            record.ttft_s = record.content_at - record.started
        self._output(record, meter)
        if meter.error is not None:
            record.error, record.error_kind = meter.error, "ollama_error"
        await reply.write_eof()
        return reply

    def _output(self, record: RequestRecord, meter: ReplyMeter) -> None:
        model = record.model or meter.model
        if model:
            self.on_output(model)

    async def _end_broken(
        self, request: web.BaseRequest, reply: web.StreamResponse, message: str
    ) -> None:
        """End a begun reply that cannot be completed: the error in its shape, or a cut."""
        trailer = _trailer(reply.headers.get("Content-Type", ""), message)
        with anyio.CancelScope(shield=True):
            try:
                if trailer is not None and reply.content_length is None:
                    await reply.write(trailer)
                    await reply.write_eof()
                    return
            except (ConnectionResetError, OSError):
                pass
            reply.force_close()
            if request.transport is not None:
                request.transport.close()  # a declared length cannot be met: cut

    def _refused(self, record: RequestRecord, message: str) -> web.Response:
        record.status, record.error, record.error_kind = 503, message, "refused"
        return error_reply(503, message)

    def _unreachable(self, record: RequestRecord, exc: BaseException) -> web.Response:
        message = (
            f"Could not reach Ollama server at {redact_url(self.base_url)} "
            f"({type(exc).__name__}: {exc}). Suggestion: check it with: n3ctl status"
        )
        record.status, record.error, record.error_kind = 502, message, "unreachable"
        return error_reply(502, message)
