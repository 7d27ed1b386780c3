"""The method table of DESIGN.md over the daemon's parts: thin functions, no I/O of their own.

Each handler reads a snapshot or sends a command to the supervisor or the model
service and turns the typed answer into its JSON object (:mod:`n3d.api.shapes`).
Errors are the parts' own exceptions; :mod:`n3d.api.faults` gives them their codes.
Model and warm methods live in :mod:`n3d.api.models`; ``rpc.discover``
is generated from this same table by :mod:`n3d.api.openrpc`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
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
from n3d.config import Settings
from n3d.jsonrpc.protocol import INVALID_PARAMS
from n3d.metrics import REGISTRY, MetricsSnapshot
from n3d.models.service import Models
from n3d.rpc.dispatch import Context, MethodError, MethodTable, Param
from n3d.state import Snapshot
from n3d.supervisor import Supervisor
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
    """What the methods may see and do; the daemon fills it in."""

    supervisor: Supervisor
    models: Models
    socket_path: Path
    settings: Callable[[], Settings]
    reload: Callable[[], str | None]  # None when reloaded, else why not
    simulate: bool = False
    started_at: float = field(default_factory=time.monotonic)
    proxy: Callable[[], RequestSource | None] = lambda: None  # None: [proxy] listen is off


def server_result(snap: Snapshot) -> shapes.Server:
    """The server's snapshot as `status.server` (and `server.*`) show it."""
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
    }


def _health(view: DaemonView, report: HealthReport | None) -> shapes.Health:
    """The health result (``health``, and ``status.health``) of ``report`` and liveness."""
    sup = view.supervisor
    probe = view.settings().liveness.inference_probe
    checks = checks_result(report, sup.liveness.report(), probe=probe, now=time.monotonic())
    return health_result(report, sup.snapshot.version, checks)


def _last_health(view: DaemonView) -> shapes.Health:
    # The newest answers with their ages, never a new probe: status must answer at
    # once even while Ollama hangs (that is when people ask).
    last = view.supervisor.health.last
    report = None
    if last is not None:
        report = HealthReport(last, max(0.0, time.monotonic() - last.at), cached=True)
    return _health(view, report)


def build_methods(view: DaemonView) -> MethodTable:
    """The full method table, ready for :class:`~n3d.rpc.server.RpcServer`."""
    table = MethodTable()
    sup = view.supervisor

    @table.method("status", summary="Daemon, server, health, resources and model counts.")
    async def status(ctx: Context, params: dict[str, Any]) -> shapes.Status:
        snap = sup.snapshot
        health = _last_health(view)
        usage = await sup.resources_async()
        return {
            "daemon": {
                "version": __version__,
                "pid": os.getpid(),
                "uptime_s": round(time.monotonic() - view.started_at, 3),
                "socket": str(view.socket_path),
                "simulate": view.simulate,
            },
            "server": server_result(snap),
            "health": health,
            "resources": {
                "rss_bytes": usage.rss_bytes,
                "cpu_percent": usage.cpu_percent,
                "processes": usage.processes,
            },
            "models": counts_result(view.models.counts()),
        }

    @table.method(
        "health",
        Param("force", bool, description="send `HEAD /` now instead of reusing a recent answer"),
        summary="The newest health checks (http, scheduler, inference), shared by every caller.",
    )
    async def health(ctx: Context, params: dict[str, Any]) -> shapes.Health:
        report = await sup.health.check(force=bool(params.get("force", False)))
        return _health(view, report)

    def _command(done: Snapshot) -> shapes.ServerCommand:
        # `state` as the command left it; `server` as it is now (it may have moved on).
        return {"state": done.state.value, "server": server_result(sup.snapshot)}

    @table.method("server.start", summary="Start the server (clears fatal).")
    async def server_start(ctx: Context, params: dict[str, Any]) -> shapes.ServerCommand:
        return _command(await sup.start())

    @table.method("server.stop", summary="Stop the server and its runners.")
    async def server_stop(ctx: Context, params: dict[str, Any]) -> shapes.ServerCommand:
        return _command(await sup.stop())

    @table.method("server.restart", summary="Stop, then start the server.")
    async def server_restart(ctx: Context, params: dict[str, Any]) -> shapes.ServerCommand:
        return _command(await sup.restart())

    add_model_methods(table, view.models, sup)

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
