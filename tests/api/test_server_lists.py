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
from n3d.models.warm_state import WarmRow
from n3d.ollama.names import parse_model_name
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


class FakeKeeper:
    """One server's warm list, as the warm handlers see it."""

    def __init__(self, warm: Sequence[str]) -> None:
        self.warm = list(warm)

    def is_warm(self, key: str) -> bool:
        return any(parse_model_name(name).key == key for name in self.warm)


class FakeWarm(FakeModels):
    def __init__(self, warm: Sequence[str] = ()) -> None:
        super().__init__()
        self.keeper = FakeKeeper(warm)
        self.removed: list[str] = []
        self.listed = 0

    async def warm_list(self) -> list[WarmRow]:
        self.listed += 1
        return [WarmRow(name, -1, False, None, None, None, "config") for name in self.keeper.warm]

    async def warm_remove(self, model: str) -> list[WarmRow]:
        self.removed.append(model)
        key = parse_model_name(model).key
        self.keeper.warm = [n for n in self.keeper.warm if parse_model_name(n).key != key]
        return await self.warm_list()


def warm_fleet() -> list[ServerParts]:
    sup = SimpleNamespace(snapshot=Snapshot(state=ServerState.RUNNING))
    lists = {"a": ["llama3:latest"], "b": ["qwen2:latest", "phi3:latest"], "c": ["phi3:latest"]}
    return [
        ServerParts(name, cast(Any, sup), cast(Any, FakeWarm(warm)), "/m")
        for name, warm in lists.items()
    ]


def warm_of(servers: Sequence[ServerParts], name: str) -> FakeWarm:
    return cast(FakeWarm, next(p for p in servers if p.name == name).models)


async def test_warm_list_without_server_shows_every_servers_entries_with_their_server() -> None:
    result = await call(warm_fleet(), "warm.list")
    assert [(m["server"], m["name"]) for m in result["models"]] == [
        ("a", "llama3:latest"),
        ("b", "qwen2:latest"),
        ("b", "phi3:latest"),
        ("c", "phi3:latest"),
    ]
    assert result["servers"] == ["a", "b", "c"] and result["server"] == "a"


async def test_warm_list_of_one_server_keeps_its_shape_plus_server() -> None:
    result = await call(warm_fleet(), "warm.list", server="b")
    assert result["server"] == "b" and result["servers"] == ["b"]
    assert [(m["server"], m["name"]) for m in result["models"]] == [
        ("b", "qwen2:latest"),
        ("b", "phi3:latest"),
    ]


async def test_warm_remove_without_server_removes_it_wherever_it_is_warm() -> None:
    servers = warm_fleet()
    result = await call(servers, "warm.remove", model="Phi3")
    assert [warm_of(servers, n).removed for n in "abc"] == [[], ["Phi3"], ["Phi3"]]
    assert [(m["server"], m["name"]) for m in result["models"]] == [
        ("a", "llama3:latest"),
        ("b", "qwen2:latest"),
    ]
    assert warm_of(servers, "b").listed == 1  # the list a removal returned is not asked again


async def test_warm_remove_with_server_leaves_the_others_alone() -> None:
    servers = warm_fleet()
    result = await call(servers, "warm.remove", model="phi3", server="c")
    assert [warm_of(servers, n).removed for n in "abc"] == [[], [], ["phi3"]]
    assert result["servers"] == ["c"] and result["models"] == []
    assert warm_of(servers, "b").keeper.warm == ["qwen2:latest", "phi3:latest"]


async def test_warm_remove_of_a_model_warm_nowhere_is_the_first_servers_no_op() -> None:
    servers = warm_fleet()
    result = await call(servers, "warm.remove", model="mistral")
    assert [warm_of(servers, n).removed for n in "abc"] == [["mistral"], [], []]
    assert result["servers"] == ["a", "b", "c"]
