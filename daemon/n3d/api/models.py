"""`models.*` and `warm.*`: thin handlers over :class:`~n3d.models.service.Models`.

Each turns the service's typed answer into its JSON (:mod:`n3d.api.shapes`) with
one of the ``*_result`` functions below; sizes stay bytes, durations and ages are
rounded to milliseconds, wall-clock times become ISO 8601 UTC.

With several servers (:mod:`n3d.api.servers`): ``models.list`` without ``server``
merges every server's models, each listed once with the ``servers`` that have it,
and ``models.loaded`` without ``server`` lists every server's, each with its ``server``
(a server that does not answer is left out while another does);
``models.pull`` without ``server`` runs once per models directory (through a
running server of it) and every server of that directory lists the model at once;
``models.delete`` without ``server`` reaches every directory once. The other
methods act on the server ``server`` names (default: the first); the warm methods
are :mod:`n3d.api.warm`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from n3d.api import shapes
from n3d.api.servers import (
    SERVER,
    ServerParts,
    one_per_directory,
    pick,
    reach,
    require_running,
    sharing,
)
from n3d.api.warm import add_warm_methods, warm_result
from n3d.errors import OllamaError
from n3d.metrics import server_scope
from n3d.models.cache import Listing
from n3d.models.job import PullResult
from n3d.models.results import DeleteResult, EnsureResult, LoadedEntry, ModelCounts, Validation
from n3d.ollama.names import parse_model_name
from n3d.rpc.dispatch import Context, MethodTable, Param

__all__ = [
    "add_model_methods",
    "counts_result",
    "default_result",
    "delete_result",
    "ensure_result",
    "list_result",
    "loaded_result",
    "merged_list_result",
    "pull_result",
    "validate_result",
    "warm_result",
]

_MODEL = Param("model", str, required=True, description="a model name, e.g. llama3:8b")


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


def merged_list_result(found: Sequence[tuple[Listing, Sequence[str]]]) -> shapes.ModelList:
    """Several listings (each with the servers that see it) as one: each model once,
    with ``servers``; ``cached`` when every one was, ``age_s`` the oldest."""
    rows: dict[str, shapes.InstalledModel] = {}
    for listing, servers in found:
        for row in list_result(listing)["models"]:
            known = rows.setdefault(row["name"], {**row, "servers": []})
            known["servers"] += [s for s in servers if s not in known["servers"]]
    return {
        "models": list(rows.values()),
        "cached": all(listing.cached for listing, _ in found),
        "age_s": round(max((listing.age_s for listing, _ in found), default=0.0), 3),
    }


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
    return {
        "installed": counts.installed,
        "loaded": counts.loaded,
        "warm": counts.warm,
        "loaded_names": list(counts.loaded_names),
        "warm_names": list(counts.warm_names),
    }


def add_model_methods(table: MethodTable, servers: Sequence[ServerParts]) -> None:
    """Register the model and warm methods on ``table``."""

    @table.method(
        "models.list",
        Param("refresh", bool, description="ask Ollama now instead of the cache"),
        SERVER,
        summary="Installed models (cached for model_cache_ttl); without `server`, "
        "every server's, each once with the servers that have it.",
    )
    async def models_list(ctx: Context, params: dict[str, Any]) -> shapes.ModelList:
        refresh = bool(params.get("refresh", False))
        named_one = params.get("server") is not None
        chosen = [pick(servers, params)] if named_one else one_per_directory(servers)
        found: list[tuple[Listing, list[str]]] = []
        failed: OllamaError | None = None
        for parts in chosen:
            with server_scope(parts.name):
                try:
                    listing = await parts.models.list(refresh)
                except OllamaError as exc:  # one server down: the others still list
                    failed = failed or exc
                    continue
            found.append((listing, [p.name for p in sharing(servers, parts)]))
        if not found:
            assert failed is not None
            raise failed
        result = merged_list_result(found)
        covered = {name for _, names in found for name in names}
        result["servers"] = [p.name for p in servers if p.name in covered]
        return result

    @table.method(
        "models.loaded",
        SERVER,
        summary="Models in memory now, marking the warm ones; without `server`, "
        "every server's, each with its server.",
    )
    async def models_loaded(ctx: Context, params: dict[str, Any]) -> shapes.LoadedList:
        chosen = [pick(servers, params)] if params.get("server") is not None else servers
        rows: list[shapes.LoadedModel] = []
        answered: list[str] = []
        failed: OllamaError | None = None
        for parts in chosen:
            with server_scope(parts.name):
                try:
                    entries = await parts.models.loaded()
                except OllamaError as exc:  # one server down: the others still answer
                    if len(chosen) == 1:
                        raise
                    failed = failed or exc
                    continue
            rows += [{**row, "server": parts.name} for row in loaded_result(entries)["models"]]
            answered.append(parts.name)
        if not answered:
            assert failed is not None
            raise failed
        return {"models": rows, "server": chosen[0].name, "servers": answered}

    @table.method(
        "models.pull",
        _MODEL,
        SERVER,
        summary="Download a model; one download however many callers, once per models "
        "directory. With workDoneToken, $/progress reports follow.",
    )
    async def models_pull(ctx: Context, params: dict[str, Any]) -> shapes.Pull:
        through = reach(servers, params)
        for parts in through:
            require_running(parts, "pull a model")
        pulled, seen = None, []
        for i, parts in enumerate(through):
            with server_scope(parts.name):
                done = await parts.models.pull(
                    params["model"], progress=ctx.progress if i == 0 else None
                )
            pulled = pulled or done
            for other in sharing(servers, parts):
                other.models.installed_changed()  # every server of the directory lists it
                seen.append(other.name)
        assert pulled is not None
        result = pull_result(pulled)
        result["servers"] = seen
        return result

    @table.method(
        "models.delete",
        _MODEL,
        SERVER,
        summary="Delete an installed model (from every models directory without `server`).",
    )
    async def models_delete(ctx: Context, params: dict[str, Any]) -> shapes.Delete:
        through = reach(servers, params)
        for parts in through:
            require_running(parts, "delete a model")
        # A server sharing the directory that keeps the model warm would pull it
        # straight back: it leaves that warm list first, as the deleting server's does.
        key = parse_model_name(params["model"]).key
        unwarmed = False
        for parts in through:
            for other in sharing(servers, parts):
                if other is not parts and other.models.keeper.is_warm(key):
                    with server_scope(other.name):
                        await other.models.warm_remove(params["model"])
                    unwarmed = True
        deleted, gone, failed = None, [], None
        for parts in through:
            with server_scope(parts.name):
                try:
                    done = await parts.models.delete(params["model"])
                except OllamaError as exc:  # not in this directory: the others may have it
                    failed = failed or exc
                    continue
            deleted = deleted or done
            for other in sharing(servers, parts):
                other.models.installed_changed()
                gone.append(other.name)
        if deleted is None:
            assert failed is not None
            raise failed
        result = delete_result(deleted)
        if unwarmed:
            result["warm_removed"] = True
        result["servers"] = gone
        return result

    @table.method(
        "models.ensure",
        _MODEL,
        Param("pull", bool, description="pull when missing (default: auto_pull_model)"),
        SERVER,
        summary="Is the model installed? Optionally pull it when it is not. "
        "With workDoneToken, a pull's $/progress reports follow.",
    )
    async def models_ensure(ctx: Context, params: dict[str, Any]) -> shapes.Ensure:
        parts = pick(servers, params)
        with server_scope(parts.name):
            ensured = await parts.models.ensure(
                params["model"], params.get("pull"), progress=ctx.progress
            )
        if ensured.pulled:
            for other in sharing(servers, parts):
                other.models.installed_changed()
        result = ensure_result(ensured)
        result["server"] = parts.name
        return result

    @table.method("models.validate", _MODEL, summary="Check a name against Ollama's grammar.")
    async def models_validate(ctx: Context, params: dict[str, Any]) -> shapes.Validate:
        return validate_result(servers[0].models.validate(params["model"]))

    @table.method("models.default", summary="The configured default model.")
    async def models_default(ctx: Context, params: dict[str, Any]) -> shapes.DefaultModel:
        return default_result(servers[0].models.default())

    add_warm_methods(table, servers)
