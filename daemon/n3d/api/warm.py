"""`warm.*`: thin handlers over each server's keep-warm (:class:`~n3d.models.Models`).

``warm.list`` without ``server`` shows every server's list, one after the other in
the config's order; ``warm.remove`` without ``server`` stops keeping the model warm
wherever it is warm, then shows every server's list. ``warm.add`` without
``server`` goes to each server whose ``models`` names the model, else to the first
(:func:`~n3d.api.servers.warm_targets`), and answers with the first of them's list.
With ``server``, each acts on that server's list and shows it. Every entry carries
its ``server``; the result carries ``server`` (the one named, else the first, as
``status.server``) and ``servers`` (whose lists it shows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from n3d.api import shapes
from n3d.api.servers import SERVER, ServerParts, named, warm_targets
from n3d.jsonrpc.protocol import INVALID_PARAMS
from n3d.metrics import server_scope
from n3d.models.warm_state import WarmRow
from n3d.ollama.duration import KeepAliveError
from n3d.ollama.names import parse_model_name
from n3d.rpc.dispatch import Context, MethodError, MethodTable, Param

__all__ = ["add_warm_methods", "utc_iso", "warm_result"]

_MODEL = Param("model", str, required=True, description="a model name, e.g. llama3:8b")


def utc_iso(wall_s: float | None) -> str | None:
    """Wall-clock seconds since the epoch as ISO 8601 UTC with `Z`, or None."""
    if wall_s is None:
        return None
    stamp = datetime.fromtimestamp(wall_s, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


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


async def _lists(
    chosen: Sequence[ServerParts], known: Mapping[str, Sequence[WarmRow]]
) -> shapes.WarmList:
    """The warm lists of ``chosen`` as one, each entry with its server; ``known``: lists
    a change just returned (not asked again). ``warm.list`` never fails: a server that
    is down shows what was seen last."""
    models: list[shapes.WarmModel] = []
    for parts in chosen:
        rows = known.get(parts.name)
        if rows is None:
            with server_scope(parts.name):
                rows = await parts.models.warm_list()
        models += [{**row, "server": parts.name} for row in warm_result(rows)["models"]]
    return {"models": models, "server": chosen[0].name, "servers": [p.name for p in chosen]}


def add_warm_methods(table: MethodTable, servers: Sequence[ServerParts]) -> None:
    """Register the warm methods on ``table``."""

    def chosen(params: dict[str, Any]) -> Sequence[ServerParts]:
        name = params.get("server")
        return servers if name is None else [named(servers, name)]

    @table.method(
        "warm.list",
        SERVER,
        summary="Models kept loaded, with their state; without `server`, every server's.",
    )
    async def warm_list(ctx: Context, params: dict[str, Any]) -> shapes.WarmList:
        return await _lists(chosen(params), {})

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
        return await _lists(targets[:1], {targets[0].name: first})

    @table.method(
        "warm.remove",
        _MODEL,
        SERVER,
        summary="Stop keeping a model loaded (without `server`: wherever it is warm).",
    )
    async def warm_remove(ctx: Context, params: dict[str, Any]) -> shapes.WarmList:
        shown = chosen(params)
        if params.get("server") is None:
            key = parse_model_name(params["model"]).key
            where = [p for p in servers if p.models.keeper.is_warm(key)] or [servers[0]]
        else:
            where = list(shown)
        done: dict[str, Sequence[WarmRow]] = {}
        for parts in where:
            with server_scope(parts.name):
                done[parts.name] = await parts.models.warm_remove(params["model"])
        return await _lists(shown, done)
