"""One proxied request, from the client's bytes to Ollama and back (DESIGN.md, "The request path").

:meth:`Forwarder.handle` is the aiohttp handler for every method and path:

1. the body is read (whole up to a MiB, else streamed: :mod:`n3d.proxy.bodies`)
   and a record opened;
2. the router (:mod:`n3d.proxy.router`) chooses its server, holds it while that
   server starts or restarts (``hold_timeout``), or refuses it: 503
   ``{"error": "..."}``. With several healthy servers, ``GET /api/tags``,
   ``/api/ps`` and ``/v1/models`` are asked of each and merged
   (:mod:`n3d.proxy.merge`);
3. it is sent. A connection that fails before the first byte of the answer is
   held and sent once more (``retry``), to the server the router chooses with the
   failed one counted as on its way back; never on routes with side effects or
   for bodies too large to replay: then 502. A 500 saying the runner died
   (:mod:`n3d.proxy.deaths`: n3d replaced it, serve still runs) is sent once more
   the same way, without waiting; when it may not be, it goes back as it came;
4. status and headers (hop-by-hop aside) go back as they came, and every read of
   the answer is written at once: NDJSON lines and SSE events are flushed as they
   come. The meter reads each piece after it is written;
5. a stream that breaks after it began ends with Ollama's own in-stream error
   ``{"error": "..."}`` (an SSE ``error`` event on ``/v1``); a reply of declared
   length that breaks is cut with its connection, never completed silently.

Foreign errors (aiohttp's, OSError) are translated here, where they enter.

Long because one request's path (admission, the once-only resend, the relay and
its broken end) is one sequence whose steps share the record and its in-flight
count; each judgement lives apart (routes, gate, pick, deaths, meter).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from yarl import URL

from n3d.proxy.bodies import Body, forwardable, read_body
from n3d.proxy.deaths import read_error
from n3d.proxy.gate import Verdict, refusal
from n3d.proxy.merge import merged_answer
from n3d.proxy.meter import ReplyMeter
from n3d.proxy.records import RequestRecord, RequestTable
from n3d.proxy.replies import StreamedReply, end_broken, error_reply, json_reply
from n3d.proxy.router import Admission, Failed, Lane, Router
from n3d.proxy.routes import BY_MODEL, LOADS_MODEL, MERGED, NO_RETRY, is_inference, route_of
from n3d.proxy.view import model_key
from n3d.redact import redact_url

__all__ = ["MERGED_SERVER", "Forwarder", "ProxyOptions"]

# Failures of the upstream connection, as aiohttp and the OS report them.
_UPSTREAM_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
_OUTPUT_EVERY_S = 1.0  # liveness needs "bytes within probe_interval", not every chunk
MERGED_SERVER = "*"  # a merged answer's record: every healthy server answered it
_PATH_MODEL = "/v1/models/"


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """The `[proxy]` keys the forwarder reads per request (a reload applies at once)."""

    hold_timeout_s: float
    drain_timeout_s: float
    retry: bool


class Forwarder:
    """The handler; owns the upstream client session (one pool, to every server)."""

    def __init__(
        self, router: Router, table: RequestTable, options: Callable[[], ProxyOptions]
    ) -> None:
        self.router = router
        self.table = table
        self.options = options
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
                await end_broken(request, record.reply, record.error)
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

    def _key(self, request: web.BaseRequest, route: str, body: Body) -> str | None:
        """The routed model's identity (with several servers only: one needs none)."""
        if len(self.router.lanes) == 1 or route not in BY_MODEL:
            return None
        model = request.path[len(_PATH_MODEL) :] if route == "/v1/models/:model" else body.model
        return model_key(model) if model else None

    async def _admit(
        self, record: RequestRecord, key: str | None, failed: Failed | None = None
    ) -> Admission:
        """The router's admission, the record following the server it waits for or goes to."""
        admission = await self.router.admit(
            key,
            by_model=record.route in BY_MODEL,
            hold_timeout_s=self.options().hold_timeout_s,
            failed=failed,
            waiting=lambda lane: self.table.move(record, lane.name),
        )
        self.table.move(record, admission.lane.name)
        record.held_s += admission.held_s
        return admission

    async def _forward(
        self, request: web.BaseRequest, record: RequestRecord, body: Body, sent: list[bool]
    ) -> web.StreamResponse:
        options = self.options()
        record.state = "held"
        key = self._key(request, record.route, body)
        admission = await self._admit(record, key)
        held_s = admission.held_s
        if admission.verdict is not Verdict.GO:
            return self._refused(record, refusal(admission.snap, waited_s=held_s or None))
        if record.route in MERGED and request.method == "GET" and len(self.router.lanes) > 1:
            merged = await self._merged(request, record, sent)
            if merged is not None:
                return merged
        lane = admission.lane
        self.table.move(record, lane.name)  # back from a merge that nobody answered
        self.table.sent(record)
        sent[0] = True
        upstream: aiohttp.ClientResponse | None = None
        while upstream is None:
            failed: Failed | None = None  # a runner died: serve still answers, no wait
            try:
                upstream = await self._send(lane, request, body)
                head, died = await read_error(upstream)
            except _UPSTREAM_ERRORS as exc:
                if upstream is not None:  # its error body broke off while read
                    upstream.close()
                    upstream = None
                if record.retried or not self._may_retry(record, body, options):
                    return self._unreachable(record, lane, exc)
                died, failed = True, Failed(lane, admission.snap)  # wait for another serve
            if died and not record.retried and self._may_retry(record, body, options):
                if upstream is not None:
                    upstream.close()
                    upstream = None
                record.retried = True
                self.table.unsent(record)
                sent[0] = False
                admission = await self._admit(record, key, failed)
                if admission.verdict is Verdict.REFUSE:
                    return self._refused(record, refusal(admission.snap))
                lane = admission.lane
                self.table.sent(record)
                sent[0] = True
        try:  # a 500 not sent again goes back as it came: its bytes read so far first
            return await self._relay(request, record, upstream, lane, key, head)
        finally:
            upstream.close()  # a finished body went back to the pool already

    async def _merged(
        self, request: web.BaseRequest, record: RequestRecord, sent: list[bool]
    ) -> web.Response | None:
        """Every healthy server's answer, merged; None when fewer than two can answer."""
        lanes = self.router.healthy()
        if len(lanes) < 2:
            return None
        assert self.session is not None, "open() first"
        self.table.move(record, MERGED_SERVER)
        self.table.sent(record)
        sent[0] = True
        headers = list(request.headers.items())
        merged = await merged_answer(self.session, lanes, record.route, request.raw_path, headers)
        if merged is None:  # none answered: one server's own answer (its error) goes back
            self.table.unsent(record)
            sent[0] = False
            return None
        record.status, record.state = 200, "streaming"
        record.meter = ReplyMeter("application/json", inference=False)
        record.meter.feed(merged)
        record.meter.close()
        return json_reply(merged)

    def _may_retry(self, record: RequestRecord, body: Body, options: ProxyOptions) -> bool:
        return options.retry and record.route not in NO_RETRY and body.replayable

    async def _send(
        self, lane: Lane, request: web.BaseRequest, body: Body
    ) -> aiohttp.ClientResponse:
        assert self.session is not None, "open() first"
        headers = forwardable(request.headers.items(), keep_length=not body.replayable)
        return await self.session.request(
            request.method,
            URL(lane.base_url + request.raw_path, encoded=True),
            headers=headers,
            data=body.data if body.replayable else body.stream,
            allow_redirects=False,
            compress=None,
        )

    async def _relay(
        self,
        request: web.BaseRequest,
        record: RequestRecord,
        upstream: aiohttp.ClientResponse,
        lane: Lane,
        key: str | None,
        head: bytes,
    ) -> web.StreamResponse:
        record.status = upstream.status
        if key is not None and upstream.status == 200 and record.route in LOADS_MODEL:
            lane.seen.answered(lane.view.snapshot(), key)  # Ollama loaded it to answer
        content_type = upstream.headers.get("Content-Type", "")
        reply = StreamedReply(status=upstream.status, reason=upstream.reason)
        for name, value in forwardable(upstream.headers.items(), keep_length=True):
            reply.headers.add(name, value)
        meter = record.meter = ReplyMeter(content_type, inference=is_inference(record.route))
        record.stream = "ndjson" in content_type or content_type.startswith("text/event-stream")
        await reply.prepare(request)
        record.reply = reply
        record.state = "streaming"
        if head:  # what was read of a 500 to judge it (deaths.read_error) goes first
            await reply.write(head)
            meter.feed(head)
        last_output = 0.0
        chunks = upstream.content.iter_any().__aiter__()
        while True:
            try:
                data = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except _UPSTREAM_ERRORS as exc:
                message = (
                    f"Ollama server at {redact_url(lane.base_url)} stopped while answering "
                    f"({type(exc).__name__}). Suggestion: send the request again"
                )
                record.error, record.error_kind = message, "stream_broken"
                await end_broken(request, reply, message)
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
                self._output(record, meter, lane)
        had_content = meter.content
        meter.close()  # a JSON reply without a newline is read now
        if meter.content and not had_content:
            record.content_at = time.monotonic()
            record.ttft_s = record.content_at - record.started
        self._output(record, meter, lane)
        if (rate := meter.decode_rate()) is not None and (model := record.model or meter.model):
            # With the generations beside it: each decodes slower when several share a batch.
            lane.view.saw_rate(model, rate, self.table.concurrency(record))
        if meter.error is not None:
            record.error, record.error_kind = meter.error, "ollama_error"
        await reply.write_eof()
        return reply

    def _output(self, record: RequestRecord, meter: ReplyMeter, lane: Lane) -> None:
        model = record.model or meter.model
        if model:
            lane.view.on_output(model)

    def _refused(self, record: RequestRecord, message: str) -> web.Response:
        record.status, record.error, record.error_kind = 503, message, "refused"
        return error_reply(503, message)

    def _unreachable(self, record: RequestRecord, lane: Lane, exc: BaseException) -> web.Response:
        message = (
            f"Could not reach Ollama server at {redact_url(lane.base_url)} "
            f"({type(exc).__name__}: {exc}). Suggestion: check it with: n3ctl status"
        )
        record.status, record.error, record.error_kind = 502, message, "unreachable"
        return error_reply(502, message)
