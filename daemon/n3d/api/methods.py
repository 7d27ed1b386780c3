"""The method table of DESIGN.md over the daemon's parts: thin functions, no I/O of their own.

Each handler reads a snapshot or sends a command to the supervisor or the model
service and turns the typed answer into its JSON object (:mod:`n3d.api.shapes`).
Errors are the parts' own exceptions; :mod:`n3d.api.faults` gives them their codes.
Model and warm methods live in :mod:`n3d.api.models`; ``rpc.discover``
is generated from this same table by :mod:`n3d.api.openrpc`. Server-scoped
methods take an optional ``server`` param (:mod:`n3d.api.servers`: default the
first server, an unknown name is 1011 ``unknown_server``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from n3d import __version__
from n3d.api import shapes
from n3d.api.health import checks_result, health_result
from n3d.api.models import add_model_methods, counts_result
from n3d.api.openrpc import openrpc_document
from n3d.api.requests import RequestSource, add_request_methods
from n3d.api.servers import SERVER, ServerParts, pick
from n3d.config import Settings
from n3d.jsonrpc.protocol import INVALID_PARAMS
from n3d.metrics import REGISTRY, MetricsSnapshot, server_scope
from n3d.rpc.dispatch import Context, MethodError, MethodTable, Param
from n3d.state import Snapshot
from n3d.supervisor.health import HealthReport

__all__ = ["EVENT_TOPICS", "DaemonView", "build_methods", "health_result", "server_result"]

EVENT_TOPICS = (
    "server.state",
    "health",
    "model.loaded",
    "model.unloaded",
    "pull",
    "warm",
    "request",
    "repair",
)


@dataclass
class DaemonView:
    """What the methods may see and do; the daemon fills it in.

    ``servers``: one :class:`~n3d.api.servers.ServerParts` per server, in the
    config's order (the first is every ``server`` param's default).
    """

    servers: Sequence[ServerParts]
    socket_path: Path
    settings: Callable[[], Settings]
    reload: Callable[[], str | None]  # None when reloaded, else why not
    simulate: bool = False
    started_at: float = field(default_factory=time.monotonic)
    proxy: Callable[[], RequestSource | None] = lambda: None  # None: [proxy] listen is off


def server_result(snap: Snapshot, name: str = "default") -> shapes.Server:
    """The server's snapshot as `status.server` (and `server.*`) show it; ``name`` is its name."""
    return {
        "state": snap.state.value,
        "mode": snap.mode,
        "base_url": snap.base_url,
        "pid": snap.pid,
        "owned": snap.owned,
        "version": snap.version,
        "restarts": snap.restarts,
        "since": snap.since,
        "reason": snap.reason,
        "last_exit": snap.last_exit,
        "last_error": snap.last_error,
        "port_holder": snap.port_holder,
        "next_start_in_s": snap.next_start_in_s,
        "name": name,
    }


def _health(view: DaemonView, parts: ServerParts, report: HealthReport | None) -> shapes.Health:
    """The health result (``health``, and each ``status.servers[].health``) of one server."""
    sup = parts.supervisor
    probe = view.settings().liveness.inference_probe
    checks = checks_result(report, sup.liveness.report(), probe=probe, now=time.monotonic())
    return health_result(report, sup.snapshot.version, checks)


def _last_health(view: DaemonView, parts: ServerParts) -> shapes.Health:
    # The newest answers with their ages, never a new probe: status must answer at
    # once even while Ollama hangs (that is when people ask).
    last = parts.supervisor.health.last
    report = None
    if last is not None:
        report = HealthReport(last, max(0.0, time.monotonic() - last.at), cached=True)
    return _health(view, parts, report)


async def _server_status(view: DaemonView, parts: ServerParts) -> shapes.ServerStatus:
    """One entry of ``status.servers``."""
    usage = await parts.supervisor.resources_async()
    block = server_result(parts.supervisor.snapshot, parts.name)
    return {
        **block,
        "health": _last_health(view, parts),
        "resources": {
            "rss_bytes": usage.rss_bytes,
            "cpu_percent": usage.cpu_percent,
            "processes": usage.processes,
        },
        "models": counts_result(parts.models.counts()),
    }


def build_methods(view: DaemonView) -> MethodTable:
    """The full method table, ready for :class:`~n3d.rpc.server.RpcServer`."""
    table = MethodTable()

    @table.method(
        "status",
        summary="Daemon, servers (each: state, health, resources, model counts); "
        "`server`, `health`, `resources` and `models` are the first server's.",
    )
    async def status(ctx: Context, params: dict[str, Any]) -> shapes.Status:
        # In turn, not in a task group: measured (bench/servers.py, 4 servers, 16
        # clients) 371 against 553 µs a call; each block is mostly a cache hit.
        blocks = [await _server_status(view, parts) for parts in view.servers]
        first = blocks[0]
        return {
            "daemon": {
                "version": __version__,
                "pid": os.getpid(),
                "uptime_s": round(time.monotonic() - view.started_at, 3),
                "socket": str(view.socket_path),
                "simulate": view.simulate,
            },
            "server": server_result(view.servers[0].supervisor.snapshot, view.servers[0].name),
            "health": first["health"],
            "resources": first["resources"],
            "models": first["models"],
            "servers": blocks,
        }

    @table.method(
        "health",
        Param("force", bool, description="send `HEAD /` now instead of reusing a recent answer"),
        SERVER,
        summary="The newest health checks (http, scheduler, inference), shared by every caller.",
    )
    async def health(ctx: Context, params: dict[str, Any]) -> shapes.Health:
        parts = pick(view.servers, params)
        with server_scope(parts.name):
            report = await parts.supervisor.health.check(force=bool(params.get("force", False)))
        result = _health(view, parts, report)
        result["server"] = parts.name
        return result

    def _command(parts: ServerParts, done: Snapshot) -> shapes.ServerCommand:
        # `state` as the command left it; `server` as it is now (it may have moved on).
        snap = parts.supervisor.snapshot
        return {"state": done.state.value, "server": server_result(snap, parts.name)}

    @table.method("server.start", SERVER, summary="Start the server (clears fatal).")
    async def server_start(ctx: Context, params: dict[str, Any]) -> shapes.ServerCommand:
        parts = pick(view.servers, params)
        with server_scope(parts.name):
            return _command(parts, await parts.supervisor.start())

    @table.method("server.stop", SERVER, summary="Stop the server and its runners.")
    async def server_stop(ctx: Context, params: dict[str, Any]) -> shapes.ServerCommand:
        parts = pick(view.servers, params)
        with server_scope(parts.name):
            return _command(parts, await parts.supervisor.stop())

    @table.method("server.restart", SERVER, summary="Stop, then start the server.")
    async def server_restart(ctx: Context, params: dict[str, Any]) -> shapes.ServerCommand:
        parts = pick(view.servers, params)
        with server_scope(parts.name):
            return _command(parts, await parts.supervisor.restart())

    add_model_methods(table, view.servers)

    @table.method("capabilities", summary="What Ollama and this daemon can do.")
    async def capabilities(ctx: Context, params: dict[str, Any]) -> shapes.Capabilities:
        settings = view.settings()
        return {
            "chat": True,
            "completion": True,
            "streaming": True,
            "embeddings": True,
            "function_calling": True,
            "vision": True,
            "model_dependent": ["function_calling", "vision", "embeddings"],
            "auto_pull": settings.ollama.auto_pull_model,
            "local_deployment": True,
            "daemon": {
                "version": __version__,
                "framing": ["ndjson", "lsp"],
                "progress": True,
                "cancel": True,
                "events": list(EVENT_TOPICS),
                "keep_warm": True,
                "mode": settings.server.mode,
                "simulate": view.simulate,
            },
        }

    @table.method(
        "metrics",
        summary="Counters, gauges and histograms (count, sum, p50, p99), per name and per tag set.",
    )
    async def metrics(ctx: Context, params: dict[str, Any]) -> MetricsSnapshot:
        # In a thread: sorting every series' reservoir takes ~0.2 ms a series (up
        # to 1000 a name), and the event loop keeps answering meanwhile.
        return await anyio.to_thread.run_sync(REGISTRY.snapshot)

    @table.method(
        "metrics.prometheus",
        summary="The metrics as Prometheus text: what GET /metrics on the proxy answers.",
    )
    async def metrics_prometheus(ctx: Context, params: dict[str, Any]) -> shapes.Prometheus:
        # Imported on first use: prometheus_client is ~10 MiB an idle n3d need not hold.
        from n3d.proxy.exposition import CONTENT_TYPE, render_prometheus

        text = await anyio.to_thread.run_sync(render_prometheus)
        return {"content_type": CONTENT_TYPE, "text": text}

    add_request_methods(table, view.proxy)

    @table.method("config.get", summary="The effective config and where each value came from.")
    async def config_get(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return view.settings().document()

    @table.method("config.reload", summary="Re-read the config file (as SIGHUP does).")
    async def config_reload(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        error = view.reload()
        result = view.settings().document() | {"reloaded": error is None}
        if error is not None:
            result["error"] = error
        return result

    @table.method(
        "events.subscribe",
        Param("topics", list, description=f"any of {', '.join(EVENT_TOPICS)}; default all"),
        summary="Receive `event` notifications on this connection.",
    )
    async def events_subscribe(ctx: Context, params: dict[str, Any]) -> shapes.Topics:
        topics = params.get("topics")
        if topics is not None:
            unknown = [t for t in topics if t not in EVENT_TOPICS]
            if unknown:
                raise MethodError(
                    INVALID_PARAMS,
                    f"Invalid params: unknown topic {unknown[0]!r}; "
                    f"topics are {', '.join(EVENT_TOPICS)}",
                    {"param": "topics"},
                )
        ctx.subscribe(topics)
        return {"topics": list(topics) if topics is not None else list(EVENT_TOPICS)}

    @table.method("events.unsubscribe", summary="Stop receiving `event` notifications.")
    async def events_unsubscribe(ctx: Context, params: dict[str, Any]) -> shapes.Topics:
        ctx.unsubscribe()
        return {"topics": []}

    @table.method("rpc.discover", summary="This interface as an OpenRPC document.")
    async def discover(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return openrpc_document(table)

    return table
