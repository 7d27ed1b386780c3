"""`models.*` and `warm.*`: thin handlers over :class:`~n3d.models.service.Models`.

Each turns the service's typed answer into its JSON (:mod:`n3d.api.shapes`) with
one of the ``*_result`` functions below; sizes stay bytes, durations and ages are
rounded to milliseconds, wall-clock times become ISO 8601 UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from n3d.api import shapes
from n3d.errors import ServerNotRunning
from n3d.jsonrpc.protocol import INVALID_PARAMS
from n3d.models.cache import Listing
from n3d.models.job import PullResult
from n3d.models.results import DeleteResult, EnsureResult, LoadedEntry, ModelCounts, Validation
from n3d.models.service import Models
from n3d.models.warm_state import WarmRow
from n3d.ollama.duration import KeepAliveError
from n3d.rpc.dispatch import Context, MethodError, MethodTable, Param
from n3d.state import ServerState
from n3d.supervisor import Supervisor

__all__ = [
    "add_model_methods",
    "counts_result",
    "default_result",
    "delete_result",
    "ensure_result",
    "list_result",
    "loaded_result",
    "pull_result",
    "validate_result",
    "warm_result",
]

_DOWN = {ServerState.STOPPED, ServerState.FATAL, ServerState.STOPPING}
_MODEL = Param("model", str, required=True, description="a model name, e.g. llama3:8b")


def utc_iso(wall_s: float | None) -> str | None:
    """Wall-clock seconds since the epoch as ISO 8601 UTC with `Z`, or None."""
    if wall_s is None:
        return None
    stamp = datetime.fromtimestamp(wall_s, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def list_result(found: Listing) -> shapes.ModelList:
    rows: list[shapes.InstalledModel] = [
        {
            "name": m.name,
            "size": m.size,
            "digest": m.digest,
            "modified_at": m.modified_at,
            "details": m.details,
        }
        for m in found.models
    ]
    return {"models": rows, "cached": found.cached, "age_s": round(found.age_s, 3)}


def loaded_result(entries: Sequence[LoadedEntry]) -> shapes.LoadedList:
    rows: list[shapes.LoadedModel] = [
        {
            "name": e.model.name,
            "size": e.model.size,
            "size_vram": e.model.size_vram,
            "expires_at": e.model.expires_at,
            "warm": e.warm,
            "context_length": e.model.context_length,
        }
        for e in entries
    ]
    return {"models": rows}


def pull_result(pulled: PullResult) -> shapes.Pull:
    return {"model": pulled.model, "status": "success", "duration_s": round(pulled.duration_s, 3)}


def delete_result(deleted: DeleteResult) -> shapes.Delete:
    result: shapes.Delete = {"model": deleted.model, "deleted": True}
    if deleted.warm_removed:
        result["warm_removed"] = True
    return result


def ensure_result(ensured: EnsureResult) -> shapes.Ensure:
    return {"model": ensured.model, "available": True, "pulled": ensured.pulled}


def validate_result(checked: Validation) -> shapes.Validate:
    return {"valid": checked.valid, "normalized": checked.normalized, "message": checked.message}


def default_result(model: str) -> shapes.DefaultModel:
    return {"model": model}


def counts_result(counts: ModelCounts) -> shapes.ModelCounts:
    return {"installed": counts.installed, "loaded": counts.loaded, "warm": counts.warm}


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
    async def models_list(ctx: Context, params: dict[str, Any]) -> shapes.ModelList:
        return list_result(await models.list(bool(params.get("refresh", False))))

    @table.method("models.loaded", summary="Models in memory now, marking the warm ones.")
    async def models_loaded(ctx: Context, params: dict[str, Any]) -> shapes.LoadedList:
        return loaded_result(await models.loaded())

    @table.method(
        "models.pull",
        _MODEL,
        summary="Download a model; one download however many callers. "
        "With workDoneToken, $/progress reports follow.",
    )
    async def models_pull(ctx: Context, params: dict[str, Any]) -> shapes.Pull:
        require_server("pull a model")
        return pull_result(await models.pull(params["model"], progress=ctx.progress))

    @table.method("models.delete", _MODEL, summary="Delete an installed model.")
    async def models_delete(ctx: Context, params: dict[str, Any]) -> shapes.Delete:
        require_server("delete a model")
        return delete_result(await models.delete(params["model"]))

    @table.method(
        "models.ensure",
        _MODEL,
        Param("pull", bool, description="pull when missing (default: auto_pull_model)"),
        summary="Is the model installed? Optionally pull it when it is not. "
        "With workDoneToken, a pull's $/progress reports follow.",
    )
    async def models_ensure(ctx: Context, params: dict[str, Any]) -> shapes.Ensure:
        ensured = await models.ensure(params["model"], params.get("pull"), progress=ctx.progress)
        return ensure_result(ensured)

    @table.method("models.validate", _MODEL, summary="Check a name against Ollama's grammar.")
    async def models_validate(ctx: Context, params: dict[str, Any]) -> shapes.Validate:
        return validate_result(models.validate(params["model"]))

    @table.method("models.default", summary="The configured default model.")
    async def models_default(ctx: Context, params: dict[str, Any]) -> shapes.DefaultModel:
        return default_result(models.default())

    @table.method("warm.list", summary="Models kept loaded, with their state.")
    async def warm_list(ctx: Context, params: dict[str, Any]) -> shapes.WarmList:
        return warm_result(await models.warm_list())

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
    async def warm_add(ctx: Context, params: dict[str, Any]) -> shapes.WarmList:
        try:
            return warm_result(await models.warm_add(params["model"], params.get("keep_alive")))
        except KeepAliveError as exc:
            raise MethodError(
                INVALID_PARAMS, f"Invalid params: keep_alive: {exc}", {"param": "keep_alive"}
            ) from exc

    @table.method("warm.remove", _MODEL, summary="Stop keeping a model loaded.")
    async def warm_remove(ctx: Context, params: dict[str, Any]) -> shapes.WarmList:
        return warm_result(await models.warm_remove(params["model"]))
