"""The pieces bench/proxy.py puts together: a fast upstream, candidate forwarders, a load client.

    .venv/bin/python bench/proxy_parts.py upstream --port P [--interval-ms 2] [--lines 400]
    .venv/bin/python bench/proxy_parts.py forward --port P --upstream URL --server S --client C

- **upstream**: a stand-in Ollama that answers ``GET /api/version`` (a small JSON
  object, as the simulator does) and streams ``POST /api/generate`` as Ollama does
  (chunked NDJSON, one chunk per token, every ``--interval-ms``; 0 = as fast as the
  socket takes them, each line still its own write), then a final object with
  Ollama's counters. Raw asyncio, so it costs less CPU than anything it measures:
  the bench measures the forwarder, not this.
- **forward**: the smallest transparent forwarder each candidate stack allows
  (``--server`` uvicorn-httptools | uvicorn-h11 | hypercorn | aiohttp; ``--client``
  httpx | httpcore | aiohttp): any method and path, headers minus hop-by-hop, both
  bodies streamed, each upstream read written at once. What n3d's proxy does per
  request beyond this (records, hold) is measured by bench/proxy.py on n3d itself.
- :func:`latency` and :func:`streams`: the load client, raw asyncio over keep-alive
  connections (HTTP/1.1 read just enough to know where a reply ends), so that a
  slow client does not hide a slow proxy.

Bench-only code: the hand-written HTTP here is never in n3d's request path.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

__all__ = ["HOP", "latency", "streams"]

HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
VERSION_BODY = b'{"version":"0.13.5"}'
GENERATE = b'{"model":"llama3.2","prompt":"hi"}'


# -- the upstream --------------------------------------------------------------------


def _line(i: int) -> bytes:
    return (
        b'{"model":"llama3.2","created_at":"2026-12-06T12:00:00.000000Z","response":" w%d",'
        b'"done":false}\n' % i
    )


def _final(lines: int) -> bytes:
    return (
        b'{"model":"llama3.2","created_at":"2026-12-06T12:00:00.000000Z","response":"",'
        b'"done":true,"done_reason":"stop","total_duration":1000000,"load_duration":1000,'
        b'"prompt_eval_count":7,"prompt_eval_duration":1000,"eval_count":%d,'
        b'"eval_duration":%d}\n' % (lines, max(1, lines) * 1000)
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Upstream(asyncio.Protocol):
    def __init__(self, lines: int, interval_s: float) -> None:
        self.lines, self.interval_s = lines, interval_s
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next()

    def _next(self) -> None:
        while not self.busy:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            method, path, _ = head[0].split(" ", 2)
            self.buf = self.buf[end:]
            assert self.transport is not None
            if path == "/api/generate":
                self.busy = True
                asyncio.get_running_loop().create_task(self._stream())
                return
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                b"Content-Length: %d\r\n\r\n%s"
                % (len(VERSION_BODY), b"" if method == "HEAD" else VERSION_BODY)
            )

    async def _stream(self) -> None:
        t = self.transport
        assert t is not None
        t.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for i in range(self.lines):
            if t.is_closing():
                return
            if self.interval_s:
                await asyncio.sleep(self.interval_s)
            elif i % 32 == 0:
                await asyncio.sleep(0)  # let the other streams write too
            t.write(_chunk(_line(i)))
        t.write(_chunk(_final(self.lines)) + b"0\r\n\r\n")
        self.busy = False
        self._next()


async def serve_upstream(port: int, lines: int, interval_s: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Upstream(lines, interval_s), "127.0.0.1", port, backlog=1024
    )
    print(f"listening {port}", flush=True)
    await server.serve_forever()


# -- the candidate forwarders ---------------------------------------------------------

Chunks = AsyncIterator[bytes]
# (method, url, headers, body) -> (status, headers, body chunks, close)
Open = Callable[
    [str, str, list[tuple[bytes, bytes]], Chunks | None],
    Awaitable[tuple[int, list[tuple[bytes, bytes]], Chunks, Callable[[], Awaitable[None]]]],
]


def _client(name: str) -> Open:
    """One upstream client behind one signature, each used as its docs show streaming."""
    if name == "httpx":
        import httpx

        hx = httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=None))

        async def open_httpx(method: str, url: str, headers: Any, body: Any) -> Any:
            request = hx.build_request(method, url, headers=headers, content=body)
            response = await hx.send(request, stream=True)
            return response.status_code, response.headers.raw, response.aiter_raw(), response.aclose

        return open_httpx
    if name == "httpcore":
        import httpcore

        pool = httpcore.AsyncConnectionPool(max_connections=None)

        async def open_httpcore(method: str, url: str, headers: Any, body: Any) -> Any:
            host = url.split("/", 3)[2].encode()
            request = httpcore.Request(
                method, url, headers=[(b"host", host), *headers], content=body
            )
            response = await pool.handle_async_request(request)
            return response.status, response.headers, response.aiter_stream(), response.aclose

        return open_httpcore
    import aiohttp

    session: aiohttp.ClientSession | None = None

    async def open_aiohttp(method: str, url: str, headers: Any, body: Any) -> Any:
        nonlocal session
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            )
        response = await session.request(
            method, url, headers=[(k.decode(), v.decode()) for k, v in headers], data=body
        )
        raw = [(k, v) for k, v in response.raw_headers]

        async def close() -> None:
            response.release()

        return response.status, raw, response.content.iter_any(), close

    return open_aiohttp


def _asgi(open_: Open, upstream: str) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP]
        has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body"):
                    return

        url = upstream + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        status, rheaders, chunks, close = await open_(
            scope["method"], url, headers, body() if has_body else None
        )
        try:
            out = [(k, v) for k, v in rheaders if k.lower() not in HOP]
            await send({"type": "http.response.start", "status": status, "headers": out})
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await close()

    return app


async def _serve_aiohttp(open_: Open, upstream: str, port: int) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = [(k, v) for k, v in request.raw_headers if k.lower() not in HOP]
        body = request.content.iter_any() if request.can_read_body else None
        status, rheaders, chunks, close = await open_(
            request.method, upstream + request.raw_path, headers, body
        )
        try:
            response = web.StreamResponse(status=status)
            for k, v in rheaders:
                if k.lower() not in HOP and k.lower() != b"content-length":
                    response.headers.add(k.decode("latin-1"), v.decode("latin-1"))
            await response.prepare(request)
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            await close()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print(f"listening {port}", flush=True)
    await asyncio.Event().wait()


async def forward(server: str, client: str, port: int, upstream: str) -> None:
    open_ = _client(client)
    if server == "aiohttp":
        await _serve_aiohttp(open_, upstream, port)
        return
    app = _asgi(open_, upstream)
    if server == "hypercorn":
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        config.backlog = 1024
        print(f"listening {port}", flush=True)
        await serve(app, config, mode="asgi")
        return
    import uvicorn

    http = "httptools" if server == "uvicorn-httptools" else "h11"
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=http,
        access_log=False,
        log_level="warning",
        lifespan="off",
        backlog=1024,
    )
    print(f"listening {port}", flush=True)
    await uvicorn.Server(config).serve()


# -- the load client -----------------------------------------------------------------


def _request(method: str, path: str, port: int, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _reply(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Read one reply; (status, NDJSON objects in its body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        body = await reader.readexactly(length)
        return status, body.count(b"\n") or 1
    objects = 0
    while True:
        size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, objects
        data = await reader.readexactly(size + 2)
        objects += data.count(b"\n") - 1  # the chunk's own CRLF ends with \n
    return status, objects


async def latency(
    port: int, clients: int, per_client: int, path: str = "/api/version", body: bytes = b""
) -> list[float]:
    """Seconds per request of ``clients`` keep-alive clients, each sending ``per_client``.

    A ``body`` makes it a POST (``/api/show {"model": ...}``: a request routed by model).
    """
    samples: list[float] = []
    request = _request("POST" if body else "GET", path, port, body)

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            done = 0
            while done < per_client:
                started = time.perf_counter()
                writer.write(request)
                try:
                    status, _ = await _reply(reader)
                except asyncio.IncompleteReadError:  # the server closed a kept-alive
                    writer.close()  # connection (hypercorn: after 1000 requests)
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                samples.append(time.perf_counter() - started)
                assert status == 200, status
                done += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(clients)))
    return samples


async def streams(port: int, clients: int, duration_s: float) -> tuple[float, int, int]:
    """(chunks/s, chunks, generates) of ``clients`` streaming generates back to back."""
    request = _request("POST", "/api/generate", port, GENERATE)
    counted = [0, 0]
    stop_at = time.perf_counter() + duration_s

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                writer.write(request)
                try:
                    status, objects = await _reply(reader)
                except asyncio.IncompleteReadError:  # as in latency()
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                assert status == 200, status
                counted[0] += objects
                counted[1] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return counted[0] / elapsed, counted[0], counted[1]


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in seconds."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upstream")
    up.add_argument("--port", type=int, required=True)
    up.add_argument("--lines", type=int, default=400)
    up.add_argument("--interval-ms", type=float, default=2.0)
    fw = sub.add_parser("forward")
    fw.add_argument("--port", type=int, required=True)
    fw.add_argument("--upstream", required=True)
    fw.add_argument("--server", default="uvicorn-httptools")
    fw.add_argument("--client", default="httpx")
    args = parser.parse_args()
    if args.command == "upstream":
        asyncio.run(serve_upstream(args.port, args.lines, args.interval_ms / 1000.0))
    else:
        asyncio.run(forward(args.server, args.client, args.port, args.upstream.rstrip("/")))


if __name__ == "__main__":
    main()
