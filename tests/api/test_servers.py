"""The `server` param and the rules across servers, with stand-ins for each server's parts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from n3d.api.faults import fault_of
from n3d.api.models import merged_list_result
from n3d.api.servers import ServerParts, named, one_per_directory, pick, reach, warm_targets
from n3d.errors import UnknownServer
from n3d.models.cache import Listing
from n3d.ollama.types import InstalledModel
from n3d.state import ServerState, Snapshot


def parts(name: str, state: str = "running", models_dir: str = "/m", *pinned: str) -> ServerParts:
    sup = SimpleNamespace(snapshot=Snapshot(state=ServerState(state)))
    return ServerParts(name, cast(Any, sup), cast(Any, None), models_dir, lambda: frozenset(pinned))


A, B, C = parts("a"), parts("b", "stopped"), parts("c", "running", "/other", "llama3.1:70b")
SERVERS = [A, B, C]


def test_no_server_param_means_the_first_and_a_name_picks_that_one() -> None:
    assert pick(SERVERS, {}) is A and pick(SERVERS, {"server": None}) is A
    assert pick(SERVERS, {"server": "c"}) is C


def test_an_unknown_name_is_1011_naming_it_and_the_servers() -> None:
    with pytest.raises(UnknownServer) as info:
        named(SERVERS, "gpu9")
    fault = fault_of(info.value)
    assert fault is not None and fault.code == 1011
    assert fault.message == "No server named 'gpu9' in the config."
    assert fault.data == {
        "kind": "unknown_server",
        "server": "gpu9",
        "suggestion": "Servers are: a, b, c (see: n3ctl status)",
    }


def test_one_server_per_models_directory_preferring_a_running_one() -> None:
    assert one_per_directory([B, A, C]) == [A, C]  # b is stopped: a serves /m
    assert one_per_directory([parts("x", "stopped"), parts("y", "stopped")])[0].name == "x"
    own = [parts("p", models_dir=""), parts("q", models_dir="")]  # "" shares with nobody
    assert [p.name for p in one_per_directory(own)] == ["p", "q"]


def test_pulls_and_deletes_reach_each_directory_once_or_the_one_named() -> None:
    assert reach(SERVERS, {}) == [A, C]
    assert reach(SERVERS, {"server": "b"}) == [B]
    down = [parts("x", "stopped"), parts("y", "fatal", "/other")]
    assert [p.name for p in reach(down, {})] == ["x"]  # all down: the first says so


def test_warm_add_goes_where_the_model_is_pinned_else_to_the_first() -> None:
    assert warm_targets(SERVERS, {"model": "llama3.1:70b"}) == [C]
    assert warm_targets(SERVERS, {"model": "Llama3.1:70B"}) == [C]  # as Ollama compares
    assert warm_targets(SERVERS, {"model": "qwen2.5"}) == [A]
    assert warm_targets(SERVERS, {"model": "llama3.1:70b", "server": "b"}) == [B]


def _listing(*names: str, cached: bool = True, age_s: float = 1.0) -> Listing:
    models = tuple(InstalledModel(n, n, 1, "d", "2024-06-04T00:00:00Z") for n in names)
    return Listing(models, fetched_at=0.0, cached=cached, age_s=age_s)


def test_merged_listing_names_each_model_once_with_the_servers_that_have_it() -> None:
    merged = merged_list_result(
        [(_listing("a:latest", "b:latest"), ["a", "b"]), (_listing("b:latest", age_s=3), ["c"])]
    )
    rows = {row["name"]: row["servers"] for row in merged["models"]}
    assert rows == {"a:latest": ["a", "b"], "b:latest": ["a", "b", "c"]}
    assert merged["cached"] is True and merged["age_s"] == 3.0


def test_warm_add_follows_pins_that_a_reload_changed() -> None:
    pins = {"a": frozenset[str](), "b": frozenset({"phi3"})}
    sup = SimpleNamespace(snapshot=Snapshot(state=ServerState.RUNNING))
    servers = [
        ServerParts(n, cast(Any, sup), cast(Any, None), "/m", lambda n=n: pins[n]) for n in pins
    ]
    assert [p.name for p in warm_targets(servers, {"model": "phi3"})] == ["b"]
    pins["a"], pins["b"] = frozenset({"phi3"}), frozenset()  # what Pins.update does
    assert [p.name for p in warm_targets(servers, {"model": "phi3"})] == ["a"]
