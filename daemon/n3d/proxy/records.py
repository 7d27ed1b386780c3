"""The requests in flight, and what each leaves behind when it ends.

A :class:`RequestRecord` lives in the :class:`RequestTable` from the moment a
request arrives until its reply ends; ``requests.list`` reads the table and
``requests.cancel`` ends one. When a request finishes, :meth:`RequestTable.finish`
publishes one ``request`` event (the access log line, DESIGN.md "Records") and
records the seed's metrics with tags ``model``, ``route``, ``status`` (and
``server``). Per-request metrics are logged at debug and always aggregated, as
``n3d.rpc.duration`` is: the ``request`` event is the one info line per request.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from n3d.metrics import Entry, metric, metrics, tagged_metric
from n3d.proxy.meter import ReplyMeter, Tokens
from n3d.proxy.routes import is_inference

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["Publish", "RequestRecord", "RequestTable"]

Publish = Callable[[str, Mapping[str, Any]], None]
Phase = Literal["held", "sent", "streaming"]


@dataclass(slots=True, eq=False)
class RequestRecord:
    """One proxied request; times are ``time.monotonic()`` unless named ``_at``."""

    id: str
    method: str
    route: str
    model: str | None
    server: str
    started: float
    started_at: float  # wall clock, for showing
    state: Phase = "sent"
    held_s: float = 0.0
    retried: bool = False
    status: int | None = None
    ttft_s: float | None = None
    content_at: float | None = None
    meter: ReplyMeter | None = None
    stream: bool = False
    error: str | None = None
    error_kind: str | None = None
    cancel_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    cancelled: bool = False
    reply: web.StreamResponse | None = None  # the client's reply, once begun
    inference: bool = False  # a generation (routes.is_inference): counted in concurrency
    concurrency: int = 0  # inference requests in flight to its server when sent, itself too

    @property
    def chunks(self) -> int:
        return self.meter.chunks if self.meter is not None else 0

    def tokens_so_far(self) -> dict[str, int] | None:
        """Final counts once known, else the content chunks streamed (one token each)."""
        meter = self.meter
        if meter is None:
            return None
        tokens = meter.tokens(None)
        if tokens is not None:
            return tokens.as_dict()
        if meter.content_chunks:
            return {"prompt": 0, "completion": meter.content_chunks, "total": meter.content_chunks}
        return None


class RequestTable:
    """The records in flight by id, the ``request`` event, and the request metrics.

    Counts are kept per server (a record's ``server`` is the one it was sent to,
    or waits for): the router's "fewest in flight", a drain's wait and the
    ``ollama.requests.in_flight`` gauge read them; the generations among those sent
    are each finished generation's :meth:`concurrency`.
    """

    def __init__(self, publish: Publish, *, server: str = "default") -> None:
        self.publish = publish
        self.server = server  # the first server: where a record starts by default
        self.records: dict[str, RequestRecord] = {}
        self._ids = itertools.count(1)
        self._open: dict[str, int] = {}  # records per server (held ones included): the gauge
        self._sent: dict[str, int] = {}  # records past the gate: what a drain waits for
        self._generating: dict[str, int] = {}  # the inference records among those sent
        self._idle: dict[str, anyio.Event] = {}

    def open(
        self, method: str, route: str, model: str | None, server: str | None = None
    ) -> RequestRecord:
        record = RequestRecord(
            id=f"r{next(self._ids)}",
            method=method,
            route=route,
            model=model,
            server=self.server if server is None else server,
            started=time.monotonic(),
            started_at=time.time(),
            inference=is_inference(route),
        )
        self.records[record.id] = record
        self._count_open(record.server, +1)
        return record

    def move(self, record: RequestRecord, server: str) -> None:
        """``record`` (not sent) now belongs to ``server``: the one it waits for or goes to."""
        if server != record.server:
            self._count_open(record.server, -1)
            record.server = server
            self._count_open(server, +1)

    def sent(self, record: RequestRecord) -> None:
        """``record`` passed the gate: a drain of its server now waits for it."""
        record.state = "sent"
        sent = self._sent[record.server] = self._sent.get(record.server, 0) + 1
        if sent == 1:
            self._idle[record.server] = anyio.Event()
        if record.inference:
            count = self._generating.get(record.server, 0) + 1
            self._generating[record.server] = record.concurrency = count

    def unsent(self, record: RequestRecord) -> None:
        """``record`` is held again (a retry waits for a server): drains stop waiting for it."""
        record.state = "held"
        self._done(record)

    def _done(self, record: RequestRecord) -> None:
        server = record.server
        sent = self._sent[server] = self._sent[server] - 1
        if not sent:
            self._idle[server].set()
        if record.inference:
            self._generating[server] -= 1

    def concurrency(self, record: RequestRecord) -> int:
        """How many generations ran on ``record``'s server beside it, itself included: the
        most of those in flight when it was sent and now (a sent inference record).

        Ollama decodes up to ``OLLAMA_NUM_PARALLEL`` sequences in one batch, so each one's
        rate falls as more run at once; liveness judges ``rate × concurrency``."""
        return max(record.concurrency, self._generating.get(record.server, 0), 1)

    def in_flight(self, server: str | None = None) -> int:
        """Requests sent to ``server`` (to any, when None) and not finished; held ones are not."""
        if server is None:
            return sum(self._sent.values())
        return self._sent.get(server, 0)

    async def idle(self, server: str | None = None) -> None:
        """Return once no request is in flight to ``server`` (to any, when None)."""
        while self.in_flight(server):
            busy = [s for s, n in self._sent.items() if n and server in (None, s)]
            await self._idle[busy[0]].wait()

    def cancel(self, request_id: str) -> bool:
        """End request ``request_id`` on both sides; False if no such request is in flight."""
        record = self.records.get(request_id)
        if record is None:
            return False
        record.cancelled = True
        record.cancel_scope.cancel()
        return True

    def finish(self, record: RequestRecord, *, was_sent: bool) -> None:
        """Forget ``record`` and leave its traces: one ``request`` event and the metrics."""
        if self.records.pop(record.id, None) is None:
            return
        if was_sent:
            self._done(record)
        self._count_open(record.server, -1)
        now = time.monotonic()
        duration_s = now - record.started
        meter = record.meter
        if meter is not None and record.model is None:
            record.model = meter.model
        generation_s = now - record.content_at if record.content_at is not None else None
        tokens = meter.tokens(generation_s) if meter is not None else None
        event = self._event(record, duration_s, tokens)
        self.publish("request", event)
        self._metrics(record, duration_s, tokens)

    def _event(
        self, record: RequestRecord, duration_s: float, tokens: Tokens | None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": record.id,
            "method": record.method,
            "route": record.route,
            "model": record.model,
            "status": record.status,
            "duration_s": round(duration_s, 6),
            "ttft_s": None if record.ttft_s is None else round(record.ttft_s, 6),
            "held_s": round(record.held_s, 6),
            "retried": record.retried,
            "stream": record.stream,
            "chunks": record.chunks,
            "tokens": tokens.as_dict() if tokens is not None else None,
            "tokens_per_second": (
                None
                if tokens is None or tokens.tokens_per_second is None
                else round(tokens.tokens_per_second, 3)
            ),
            "server": record.server,
        }
        if record.error is not None:
            event["error"] = record.error
        return event

    def _metrics(self, record: RequestRecord, duration_s: float, tokens: Tokens | None) -> None:
        tags: dict[str, Any] = {
            "model": record.model or "",
            "route": record.route,
            "status": record.status if record.status is not None else 0,
            "server": record.server,
        }
        entries: list[Entry] = [("ollama.request.duration", duration_s, "s", None)]
        if record.ttft_s is not None:
            entries.append(("ollama.request.ttft", record.ttft_s, "s", None))
        if record.held_s:
            entries.append(("ollama.request.held", record.held_s, "s", None))
        if record.stream:
            entries.append(("ollama.stream.duration", duration_s, "s", None))
            entries.append(("ollama.stream.chunks", record.chunks, "{chunk}", None))
        if tokens is not None:
            rate = tokens.tokens_per_second
            entries += [
                ("ollama.tokens.prompt", tokens.prompt, "{token}", None),
                ("ollama.tokens.completion", tokens.completion, "{token}", None),
                ("ollama.tokens.total", tokens.total, "{token}", None),
            ]
            if record.stream:
                entries.append(("ollama.stream.tokens", tokens.total, "{token}", None))
                if rate is not None:
                    entries.append(("ollama.stream.throughput", rate, "{token}/s", None))
            if rate is not None:
                entries.append(("ollama.throughput.tokens_per_second", rate, "{token}/s", None))
        metrics(entries, tags, log_level="debug")
        if record.error_kind is not None:
            errors = {"kind": record.error_kind, **tags}
            tagged_metric("ollama.request.errors", 1, "{error}", errors, log_level="debug")

    def _count_open(self, server: str, change: int) -> None:
        count = self._open[server] = self._open.get(server, 0) + change
        metric(
            "ollama.requests.in_flight",
            count,
            "{request}",
            kind="gauge",
            log_level="debug",
            server=server,
        )
