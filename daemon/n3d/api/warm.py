"""`warm.*`: thin handlers over each server's keep-warm (:class:`~n3d.models.Models`).

``warm.list`` and ``warm.remove`` act on the server ``server`` names (default the
first); ``warm.add`` without ``server`` goes to each server whose ``models`` names
the model, else to the first (:func:`~n3d.api.servers.warm_targets`), and answers
with the first of them's list. Every result carries ``server``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from n3d.api import shapes
from n3d.api.servers import SERVER, ServerParts, pick, warm_targets
from n3d.jsonrpc.protocol import INVALID_PARAMS
from n3d.metrics import server_scope
from n3d.models.warm_state import WarmRow
from n3d.ollama.duration import KeepAliveError
from n3d.rpc.dispatch import Context, MethodError, MethodTable, Param

__all__ = ["add_warm_methods", "utc_iso", "warm_result"]

_MODEL = Param("model", str, required=True, description="a model name, e.g. llama3:8b")


def utc_iso(wall_s: float | None) -> str | None:
    """Wall-clock seconds since the epoch as ISO 8601 UTC with `Z`, or None."""
    if wall_s is None:
        return None
    stamp = datetime.fromtimestamp(wall_s, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _with_server(result: shapes.WarmList, name: str) -> shapes.WarmList:
    result["server"] = name
    return result


def warm_result(rows: Sequence[WarmRow]) -> shapes.WarmList:
    models: list[shapes.WarmModel] = [
        {
            "name": r.name,
            "keep_alive": r.keep_alive,
            "loaded": r.loaded,
            "expires_at": r.expires_at,
            "last_warmed_at": utc_iso(r.last_warmed_at),
            "last_error": r.last_error,
            "source": r.source,
        }
        for r in rows
    ]
    return {"models": models}


def add_warm_methods(table: MethodTable, servers: Sequence[ServerParts]) -> None:
    """Register the warm methods on ``table``."""

    @table.method("warm.list", SERVER, summary="Models kept loaded, with their state.")
    async def warm_list(ctx: Context, params: dict[str, Any]) -> shapes.WarmList:
        parts = pick(servers, params)
        with server_scope(parts.name):
            return _with_server(warm_result(await parts.models.warm_list()), parts.name)

    @table.method(
        "warm.add",
        _MODEL,
        Param(
            "keep_alive",
            (str, int, float),
            description='Go duration ("24h") or seconds; negative = forever',
        ),
        SERVER,
        summary="Keep a model loaded from now on, across restarts (on the server named, "
        "else on each whose `models` names it, else on the first).",
    )
    async def warm_add(ctx: Context, params: dict[str, Any]) -> shapes.WarmList:
        targets = warm_targets(servers, params)
        try:
            for parts in targets:
                with server_scope(parts.name):
                    rows = await parts.models.warm_add(params["model"], params.get("keep_alive"))
                    if parts is targets[0]:
                        first = rows
        except KeepAliveError as exc:
            raise MethodError(
                INVALID_PARAMS, f"Invalid params: keep_alive: {exc}", {"param": "keep_alive"}
            ) from exc
        return _with_server(warm_result(first), targets[0].name)

    @table.method("warm.remove", _MODEL, SERVER, summary="Stop keeping a model loaded.")
    async def warm_remove(ctx: Context, params: dict[str, Any]) -> shapes.WarmList:
        parts = pick(servers, params)
        with server_scope(parts.name):
            return _with_server(
                warm_result(await parts.models.warm_remove(params["model"])), parts.name
            )
