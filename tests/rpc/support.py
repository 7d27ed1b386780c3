"""Helpers for the control-socket tests: a test method table, a running server, raw clients."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

from n3d.client import Connection
from n3d.errors import OllamaError
from n3d.rpc import Context, MethodError, MethodTable, Param, RpcServer

ANY_JSON = (str, int, float, bool, list, dict, type(None))


@dataclass
class Record:
    """What the test handlers saw, for assertions (written from the server thread)."""

    cancelled: list[str] = field(default_factory=list)
    notified: list[Any] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # `sleep` tags, as each one begins
    concurrent: int = 0  # `gauge` calls running now
    most_concurrent: int = 0  # the most that ever ran at once

    def wait_started(self, tag: str, timeout: float = 10.0) -> None:
        """Block until the `sleep` handler tagged ``tag`` runs (a cancel can then hit it)."""
        deadline = time.monotonic() + timeout
        while tag not in self.started:
            assert time.monotonic() < deadline, f"sleep {tag!r} never started"
            time.sleep(0.005)


def make_table(record: Record | None = None) -> MethodTable:
    """The specification's example methods plus echo/sleep/fail/progress/events."""
    rec = record or Record()
    table = MethodTable()

    @table.method("subtract", Param("minuend", float, True), Param("subtrahend", float, True))
    async def subtract(ctx: Context, p: dict[str, Any]) -> Any:
        return p["minuend"] - p["subtrahend"]

    @table.method("sum", Param("a", float), Param("b", float), Param("c", float))
    async def sum_(ctx: Context, p: dict[str, Any]) -> Any:
        return sum(p.values())

    @table.method("get_data")
    async def get_data(ctx: Context, p: dict[str, Any]) -> Any:
        return ["hello", 5]

    for name in ("notify_hello", "notify_sum", "update"):
        table.add(name, _recorder(rec), [Param(f"p{i}", ANY_JSON) for i in range(8)])

    @table.method("echo", Param("value", ANY_JSON))
    async def echo(ctx: Context, p: dict[str, Any]) -> Any:
        return {"value": p.get("value")}

    @table.method("sleep", Param("seconds", float, True), Param("tag", str))
    async def sleep(ctx: Context, p: dict[str, Any]) -> Any:
        rec.started.append(p.get("tag", ""))
        try:
            await anyio.sleep(p["seconds"])
        except anyio.get_cancelled_exc_class():
            rec.cancelled.append(p.get("tag", ""))
            raise
        return {"slept": p["seconds"]}

    @table.method("fail", Param("kind", str, True))
    async def fail(ctx: Context, p: dict[str, Any]) -> Any:
        if p["kind"] == "ollama":
            raise OllamaError.model_missing("llama3:8b", "http://127.0.0.1:11434")
        if p["kind"] == "method":
            raise MethodError(-32001, "custom failure", {"why": "test"})
        raise RuntimeError("secret internal detail")

    @table.method("progress", Param("steps", int, True), Param("hold", float))
    async def progress(ctx: Context, p: dict[str, Any]) -> Any:
        await ctx.progress({"kind": "begin", "title": "Working", "percentage": 0})
        for i in range(p["steps"]):
            await ctx.progress({"kind": "report", "percentage": (i + 1) * 100 // p["steps"]})
        await anyio.sleep(p.get("hold", 0))
        await ctx.progress({"kind": "end", "message": "done"})
        return {"steps": p["steps"]}

    @table.method("gauge", Param("seconds", float))
    async def gauge(ctx: Context, p: dict[str, Any]) -> Any:
        rec.concurrent += 1
        rec.most_concurrent = max(rec.most_concurrent, rec.concurrent)
        try:
            await anyio.sleep(p.get("seconds", 0.001))
        finally:
            rec.concurrent -= 1
        return {"ok": True}

    @table.method("notify_nan")
    async def notify_nan(ctx: Context, p: dict[str, Any]) -> Any:
        await ctx.notify("measured", {"value": float("nan")})  # n3d's bug: not JSON
        return {"notified": True}

    @table.method("events.subscribe", Param("topics", list))
    async def subscribe(ctx: Context, p: dict[str, Any]) -> Any:
        ctx.subscribe(p.get("topics"))
        return {"subscribed": p.get("topics")}

    @table.method("events.unsubscribe")
    async def unsubscribe(ctx: Context, p: dict[str, Any]) -> Any:
        ctx.unsubscribe()
        return {}

    @table.method("status")
    async def status(ctx: Context, p: dict[str, Any]) -> Any:
        return {"daemon": {"pid": os.getpid()}, "server": {"state": "running"}}

    return table


def _recorder(rec: Record) -> Any:
    async def handler(ctx: Context, p: dict[str, Any]) -> Any:
        rec.notified.append(ctx.method)
        return None

    return handler


@dataclass
class Running:
    server: RpcServer
    path: Path
    portal: BlockingPortal
    record: Record

    def broadcast(self, topic: str, payload: dict[str, Any]) -> int:
        return self.portal.call(self.server.broadcast, topic, payload)


class Raw:
    """A blocking client that sends exact bytes and reads framed replies."""

    def __init__(self, path: Path, framing: str = "ndjson", timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.framing = framing
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def ndjson(message: Any) -> bytes:
        return json.dumps(message).encode() + b"\n"

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: Any) -> None:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        if self.framing == "lsp":
            self.send_raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        else:
            self.send_raw(body.replace(b"\n", b" ") + b"\n")

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def recv(self) -> Any:
        """The next message; raises EOFError when the server closed the connection."""
        while True:
            if self.framing == "lsp" and b"\r\n\r\n" in self.buf:
                head, _, rest = self.buf.partition(b"\r\n\r\n")
                length = int(head.split(b":")[1])
                if len(rest) >= length:
                    self.buf = rest[length:]
                    return json.loads(rest[:length])
            elif self.framing == "ndjson" and b"\n" in self.buf:
                line, _, self.buf = self.buf.partition(b"\n")
                return json.loads(line)
            if not self._fill():
                raise EOFError("server closed the connection")

    def call(self, message: Any) -> Any:
        self.send(message)
        return self.recv()

    def expect_closed(self) -> None:
        """Everything after the last message is EOF or a reset (the server hung up)."""
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            return  # closed with our unread request in its buffer: the kernel resets
        assert self.buf == b"", self.buf


class Steady:
    """A well-behaved client calling ``echo`` in a loop on its own thread, for the whole test.

    Connected before the trouble starts (so ``max_connections`` cannot refuse it);
    ``stop()`` returns how many calls succeeded and raises the first failure.
    """

    def __init__(self, path: Path) -> None:
        self._conn = Connection(path, timeout=5.0)
        self._stop = threading.Event()
        self.calls = 0
        self.worst_s = 0.0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self.calls and self.error is None and time.monotonic() < deadline:
            time.sleep(0.001)  # accepted and served once: the trouble may begin

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                assert self._conn.call("echo", {"value": self.calls}) == {"value": self.calls}
                self.worst_s = max(self.worst_s, time.perf_counter() - started)
                self.calls += 1
                time.sleep(0.002)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        self._conn.close()
        if self.error is not None:
            raise self.error
        assert self.calls > 0
        return self.calls
