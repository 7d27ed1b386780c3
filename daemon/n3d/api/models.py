"""`models.*` and `warm.*`: thin handlers over :class:`~n3d.models.service.Models`."""

from __future__ import annotations

from typing import Any

from n3d.errors import ServerNotRunning
from n3d.jsonrpc.protocol import INVALID_PARAMS
from n3d.models.service import Models
from n3d.ollama.duration import KeepAliveError
from n3d.rpc.dispatch import Context, MethodError, MethodTable, Param
from n3d.state import ServerState
from n3d.supervisor import Supervisor

__all__ = ["add_model_methods"]

_DOWN = {ServerState.STOPPED, ServerState.FATAL, ServerState.STOPPING}
_MODEL = Param("model", str, required=True, description="a model name, e.g. llama3:8b")


def add_model_methods(table: MethodTable, models: Models, sup: Supervisor) -> None:
    """Register the model and warm methods on ``table``."""

    def require_server(action: str) -> None:
        snap = sup.snapshot
        if snap.state in _DOWN:
            raise ServerNotRunning(
                f"Cannot {action}: the Ollama server is {snap.state.value}.",
                base_url=snap.base_url,
                suggestion="Start it with: n3ctl start",
            )

    @table.method(
        "models.list",
        Param("refresh", bool, description="ask Ollama now instead of the cache"),
        summary="Installed models (cached for model_cache_ttl).",
    )
    async def models_list(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return await models.list(bool(params.get("refresh", False)))

    @table.method("models.loaded", summary="Models in memory now, marking the warm ones.")
    async def models_loaded(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return await models.loaded()

    @table.method(
        "models.pull",
        _MODEL,
        summary="Download a model; one download however many callers. "
        "With workDoneToken, $/progress reports follow.",
    )
    async def models_pull(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        require_server("pull a model")
        return await models.pull(params["model"], progress=ctx.progress)

    @table.method("models.delete", _MODEL, summary="Delete an installed model.")
    async def models_delete(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        require_server("delete a model")
        return await models.delete(params["model"])

    @table.method(
        "models.ensure",
        _MODEL,
        Param("pull", bool, description="pull when missing (default: auto_pull_model)"),
        summary="Is the model installed? Optionally pull it when it is not. "
        "With workDoneToken, a pull's $/progress reports follow.",
    )
    async def models_ensure(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return await models.ensure(params["model"], params.get("pull"), progress=ctx.progress)

    @table.method("models.validate", _MODEL, summary="Check a name against Ollama's grammar.")
    async def models_validate(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return models.validate(params["model"])

    @table.method("models.default", summary="The configured default model.")
    async def models_default(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return models.default()

    @table.method("warm.list", summary="Models kept loaded, with their state.")
    async def warm_list(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return await models.warm_list()

    @table.method(
        "warm.add",
        _MODEL,
        Param(
            "keep_alive",
            (str, int, float),
            description='Go duration ("24h") or seconds; negative = forever',
        ),
        summary="Keep a model loaded from now on, across restarts.",
    )
    async def warm_add(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await models.warm_add(params["model"], params.get("keep_alive"))
        except KeepAliveError as exc:
            raise MethodError(
                INVALID_PARAMS, f"Invalid params: keep_alive: {exc}", {"param": "keep_alive"}
            ) from exc

    @table.method("warm.remove", _MODEL, summary="Stop keeping a model loaded.")
    async def warm_remove(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return await models.warm_remove(params["model"])
