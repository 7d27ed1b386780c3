"""Request dispatch: gin's router behaviour, the host guard, faults and both logs.

Unknown paths get gin's `404 page not found` and known paths with another method
`405 method not allowed`, both text/plain. Handlers raise :class:`HttpError` for
`{"error": ...}` replies. Every answered request gets a gin access line on stdout
and, with `OLLAMA_SIM_REQUEST_LOG`, one JSON line in that file (with the request's
JSON body, so tests can see what a client sent). Inference handlers run under
:meth:`App.until_gone`: a client that closes its connection cancels its request, as
Go's request context does, and the request is logged with status 499.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from n3d.sim.config import SimConfig
from n3d.sim.faults import Faults
from n3d.sim.http import Request, Response
from n3d.sim.logs import gin_access
from n3d.sim.pull import Puller
from n3d.sim.scheduler import Scheduler
from n3d.sim.store import Store
from n3d.sim.wire import go_json

__all__ = ["JSON", "App", "ClientGone", "HttpError", "RouteTable", "crash"]

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


class HttpError(Exception):
    """Reply `status` with `{"error": message}` (or an empty body when message is None)."""

    def __init__(self, status: int, message: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client closed its connection before its request was answered."""


RouteHandler = Callable[["App", Request, Response], Awaitable[None]]
RouteTable = dict[str, dict[str, RouteHandler]]


def crash(code: int) -> None:
    """Die like a Go panic: a goroutine trace on stderr, exit code 2 (or the one asked)."""
    sys.stderr.write(
        "panic: n3d simulator: crash requested by OLLAMA_SIM_CRASH_AFTER or the "
        "control file\n\ngoroutine 1 [running]:\nmain.main()\n"
        "\t/go/src/github.com/ollama/ollama/main.go:12 +0x13\n"
    )
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)  # no cleanup: runners are orphaned, as after a real panic


def _host_allowed(host_header: str) -> bool:
    """Ollama's `allowedHostsMiddleware` test for a loopback-bound server."""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if not host:
        return True
    lowered = host.lower()
    if lowered in ("localhost", socket.gethostname().lower()):
        return True
    if lowered.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified


def _body_record(body: bytes) -> Any:
    """A request body for the request log: its JSON, its text, or None when empty."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class App:
    """Shared state of one simulator process, and the request entry point."""

    def __init__(self, config: SimConfig, faults: Faults, routes: RouteTable) -> None:
        self.config = config
        self.faults = faults
        self.store = Store(config.models_dir)
        self.scheduler = Scheduler(config, faults, self.store)
        self.puller = Puller(self.store, faults)
        self.routes = routes
        self.guard_hosts = False
        self._request_log: IO[str] | None = None
        if config.request_log_path is not None:
            path: Path = config.request_log_path
            path.parent.mkdir(parents=True, exist_ok=True)
            self._request_log = path.open("a", encoding="utf-8")

    async def reply_json(
        self, resp: Response, status: int, body: Any, content_type: str = JSON
    ) -> None:
        await resp.send(status, go_json(body), content_type)

    async def _wait_while_hung(self) -> None:
        # "Stop answering": the connection stays open and the request is never answered,
        # until the control file lifts the fault.
        while self.faults.state().hang:  # noqa: ASYNC110 - the control file is polled
            await asyncio.sleep(0.05)

    async def hold_inference(self) -> None:
        """`hang_inference`: wait here, before the scheduler, while the fault is on."""
        while self.faults.state().hang_inference:  # noqa: ASYNC110 - the control file is polled
            await asyncio.sleep(0.05)

    async def until_gone(self, req: Request, work: Awaitable[None]) -> None:
        """Run `work`; cancel it and raise :class:`ClientGone` if the client leaves first.

        Go cancels a request's context when its connection closes, and Ollama drops a
        request cancelled while queued or scheduled (499) and stops its generation.
        """
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=0.05)
                if not task.done() and req.gone():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    raise ClientGone
            task.result()
        finally:
            if not task.done():
                task.cancel()

    async def faults_gate(self) -> None:
        """Between streamed chunks: crash or stall here too when a fault asks for it."""
        state = self.faults.state()
        if state.crash:
            crash(state.crash)
        if state.hang:
            await self._wait_while_hung()

    async def handle(self, req: Request, resp: Response) -> None:
        """Answer one request (the `serve_connection` handler)."""
        started = time.monotonic()
        state = self.faults.state()
        if state.crash:
            crash(state.crash)
        if state.hang:
            await self._wait_while_hung()
        if state.response_delay_s > 0:
            await asyncio.sleep(state.response_delay_s)
        try:
            await self._dispatch(req, resp)
        except ClientGone:
            if not resp.status:
                resp.status = 499  # Ollama's "request canceled"; nobody is left to read it
        finally:
            if resp.status:
                gin_access(
                    resp.status,
                    time.monotonic() - started,
                    req.client_ip or "127.0.0.1",
                    req.method,
                    req.path,
                )
                self._log_request(req, resp.status, time.monotonic() - started)

    async def _dispatch(self, req: Request, resp: Response) -> None:
        if self.guard_hosts and not _host_allowed(req.headers.get("host", "")):
            await resp.send(403)
            return
        methods = self.routes.get(req.path)
        if methods is None:
            await resp.send(404, b"404 page not found", TEXT)
            return
        handler = methods.get(req.method)
        if handler is None:
            await resp.send(405, b"405 method not allowed", TEXT)
            return
        try:
            await handler(self, req, resp)
        except HttpError as exc:
            if resp.streaming:
                await resp.write(go_json({"error": exc.message}) + b"\n")
                await resp.end_stream()
            elif exc.message is None:
                await resp.send(exc.status)
            else:
                await self.reply_json(resp, exc.status, {"error": exc.message})

    def _log_request(self, req: Request, status: int, seconds: float) -> None:
        if self._request_log is None:
            return
        record = {
            "ts": round(time.time(), 6),
            "method": req.method,
            "path": req.path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "body": _body_record(req.body),
        }
        self._request_log.write(json.dumps(record) + "\n")
        self._request_log.flush()
