"""The list methods without `server`: every server's entries, each with its server.

Each server is a stand-in (its supervisor's snapshot, its model service's answers);
the handlers are the daemon's own, called as the dispatcher calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, cast

import pytest

from n3d.api.models import add_model_methods
from n3d.api.servers import ServerParts
from n3d.errors import OllamaUnreachable
from n3d.models.cache import Listing
from n3d.models.results import LoadedEntry
from n3d.ollama.types import InstalledModel, LoadedModel
from n3d.rpc.dispatch import MethodTable
from n3d.state import ServerState, Snapshot


class FakeModels:
    """What the handlers ask of one server's model service; ``down``: Ollama is gone."""

    def __init__(self, installed: Sequence[str] = (), loaded: Sequence[str] = ()) -> None:
        self.installed, self.in_memory, self.down = list(installed), list(loaded), False

    def _check(self) -> None:
        if self.down:
            raise OllamaUnreachable("Nothing answered.")

    async def list(self, refresh: bool) -> Listing:
        self._check()
        models = tuple(InstalledModel(n, n, 1, "d", "2024-06-04T00:00:00Z") for n in self.installed)
        return Listing(models, fetched_at=0.0, cached=True, age_s=1.0)

    async def loaded(self) -> list[LoadedEntry]:
        self._check()
        return [
            LoadedEntry(LoadedModel(n, n, 1, 1, "d", "2318-01-01T00:00:00Z"), warm=False)
            for n in self.in_memory
        ]


def server(name: str, models_dir: str, **models: Any) -> ServerParts:
    sup = SimpleNamespace(snapshot=Snapshot(state=ServerState.RUNNING))
    return ServerParts(name, cast(Any, sup), cast(Any, FakeModels(**models)), models_dir)


async def call(servers: Sequence[ServerParts], method: str, **params: Any) -> Any:
    table = MethodTable()
    add_model_methods(table, servers)
    found = table.get(method)
    assert found is not None
    return await found.handler(cast(Any, None), params)


def fleet() -> list[ServerParts]:
    return [
        server("a", "/m", installed=["llama3:latest"], loaded=["llama3:latest"]),
        server("b", "/m", installed=["llama3:latest"], loaded=["qwen2:latest"]),
        server("c", "/other", installed=["phi3:latest"]),
    ]


async def test_loaded_without_server_lists_every_servers_models_with_their_server() -> None:
    result = await call(fleet(), "models.loaded")
    assert [(m["server"], m["name"]) for m in result["models"]] == [
        ("a", "llama3:latest"),
        ("b", "qwen2:latest"),
    ]
    assert result["servers"] == ["a", "b", "c"] and result["server"] == "a"


async def test_loaded_of_one_server_keeps_its_shape() -> None:
    result = await call(fleet(), "models.loaded", server="b")
    assert result["server"] == "b" and result["servers"] == ["b"]
    assert [m["name"] for m in result["models"]] == ["qwen2:latest"]


async def test_loaded_leaves_out_a_server_that_does_not_answer_while_another_does() -> None:
    servers = fleet()
    cast(FakeModels, servers[0].models).down = True
    result = await call(servers, "models.loaded")
    assert result["servers"] == ["b", "c"]
    for parts in servers:
        cast(FakeModels, parts.models).down = True
    with pytest.raises(OllamaUnreachable):
        await call(servers, "models.loaded")
    with pytest.raises(OllamaUnreachable):
        await call(servers[1:], "models.loaded", server="b")


async def test_the_merged_listing_names_the_servers_it_covers() -> None:
    result = await call(fleet(), "models.list")
    assert result["servers"] == ["a", "b", "c"]
    assert {m["name"]: m["servers"] for m in result["models"]} == {
        "llama3:latest": ["a", "b"],
        "phi3:latest": ["c"],
    }
    assert (await call(fleet(), "models.list", server="c"))["servers"] == ["c"]
