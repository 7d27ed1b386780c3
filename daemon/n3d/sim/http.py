"""A small HTTP/1.1 server on asyncio streams, behaving like Go's net/http.

Persistent connections, `Content-Length` and chunked request bodies, `Expect:
100-continue`, HEAD (headers without a body), fixed-length replies and chunked
streaming replies flushed per write. `Server.abort_all` closes every connection at
once, as Go's `http.Server.Close` does on Ollama's first SIGTERM. `Request.gone()`
tells when the client has closed its connection, which Go turns into a cancelled
request context (its connection's background read sees the EOF).
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["BadRequest", "Connections", "Request", "Response", "serve_connection"]

_MAX_HEADER_BYTES = 1 << 20  # Go's DefaultMaxHeaderBytes
_REASONS = {
    100: "Continue",
    200: "OK",
    301: "Moved Permanently",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    499: "status code 499",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.x request we can answer."""


@dataclass(slots=True)
class Request:
    """One parsed request. Header names are lower-case."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""
    client_ip: str = ""
    gone: Callable[[], bool] = field(default=lambda: False)  # the client closed its side

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"


@dataclass(slots=True)
class Response:
    """Writes one reply; remembers its status for the access log."""

    writer: asyncio.StreamWriter
    request: Request
    status: int = 0
    streaming: bool = False
    _chunked: bool = field(default=False)

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        self.status = status
        reason = _REASONS.get(status, "")
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
        if not self.request.keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @property
    def must_close(self) -> bool:
        """An unchunked stream (HTTP/1.0) ends only when the connection closes."""
        return self.streaming and not self._chunked

    async def send(self, status: int, body: bytes = b"", content_type: str | None = None) -> None:
        """A complete reply with Content-Length (HEAD gets the headers only)."""
        headers = [("Content-Type", content_type)] if content_type else []
        headers.append(("Content-Length", str(len(body))))
        data = self._head(status, headers)
        if self.request.method != "HEAD":
            data += body
        self.writer.write(data)
        await self.writer.drain()

    async def start_stream(self, status: int, content_type: str) -> None:
        """Start a chunked reply; every `write` is flushed at once, like gin's `c.Stream`."""
        self.streaming = True
        self._chunked = self.request.version != "HTTP/1.0"
        headers = [("Content-Type", content_type)]
        if self._chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        self.writer.write(self._head(status, headers))
        await self.writer.drain()

    async def write(self, data: bytes) -> None:
        if not data or self.request.method == "HEAD":
            return
        if self._chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        self.writer.write(data)
        await self.writer.drain()

    async def end_stream(self) -> None:
        if self._chunked and self.request.method != "HEAD":
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = await reader.readline()
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            if size == 0:
                while (await reader.readline()).strip():
                    pass  # trailers
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = headers.get("content-length", "")
    if not length:
        return b""
    if not length.isdigit():
        raise BadRequest("bad Content-Length")
    return await reader.readexactly(int(length))


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request | None:
    """The next request on a connection, or None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("truncated request") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request header too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest("malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest("unsupported protocol")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    body = await _read_body(reader, headers)
    return Request(method, target, version, headers, body)


Handler = Callable[[Request, Response], Awaitable[None]]


class Connections:
    """Every open connection, so a first SIGTERM can close them all at once."""

    def __init__(self) -> None:
        self._writers: set[asyncio.StreamWriter] = set()

    def add(self, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)

    def discard(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)

    def abort_all(self) -> None:
        """Reset every connection now: streams are cut, nothing is drained."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    connections: Connections,
) -> None:
    """Answer requests on one connection until the client or the handler closes it."""
    connections.add(writer)
    peer = writer.get_extra_info("peername")
    client_ip = peer[0] if isinstance(peer, tuple) else ""
    try:
        while True:
            try:
                request = await read_request(reader, writer)
            except BadRequest:
                writer.write(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; "
                    b"charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
                )
                await writer.drain()
                return
            if request is None:
                return
            request.client_ip = client_ip
            request.gone = lambda: (
                reader.at_eof() or reader.exception() is not None or writer.transport.is_closing()
            )
            response = Response(writer, request)
            await handler(request, response)
            if not request.keep_alive or response.must_close:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        connections.discard(writer)
        writer.close()
