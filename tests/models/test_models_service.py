"""The `Models` facade: result shapes of DESIGN.md's table, delete, ensure, the warm list."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest

from n3d.api.faults import fault_of
from n3d.api.models import (
    default_result,
    delete_result,
    ensure_result,
    list_result,
    validate_result,
    warm_result,
)
from n3d.errors import InvalidModelName, ModelNotFound, OllamaError, StateNotSaved
from n3d.metrics import REGISTRY
from n3d.models import Models
from n3d.ollama.client import OllamaClient
from n3d.ollama.duration import KeepAliveError

from .models_support import Events, MakeSettings, StartSim, running, wait_until

DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port


@pytest.mark.slow
async def test_list_delete_and_ensure_against_the_simulator(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2,tinyllama"})
    events = Events()
    settings = make_settings(sim.url, warm_models=("tinyllama",), auto_pull_model=True)
    async with OllamaClient(sim.url) as client:
        models = Models(client, settings, publish=events, state_path=tmp_path / "w.json")
        async with running(models):
            await wait_until(lambda: bool(events.of("warm", action="warmed")), 5, "warm-up")
            listed = list_result(await models.list())
            assert set(listed) == {"models", "cached", "age_s"}
            row = listed["models"][0]
            assert set(row) == {"name", "size", "digest", "modified_at", "details"}
            assert list_result(await models.list())["cached"] is True

            assert delete_result(await models.delete("llama3.2")) == {
                "model": "llama3.2:latest",
                "deleted": True,
            }
            after = list_result(await models.list())  # the cache was invalidated by the delete
            assert [m["name"] for m in after["models"]] == ["tinyllama:latest"]
            with pytest.raises(ModelNotFound):
                await models.delete("llama3.2")

            # A deleted warm model leaves the warm list, or the keeper would pull it back.
            gone = delete_result(await models.delete("tinyllama"))
            assert gone["warm_removed"] is True
            assert warm_result(await models.warm_list())["models"] == []

            # auto_pull_model: a missing model is pulled by ensure ...
            assert ensure_result(await models.ensure("llama3.2")) == {
                "model": "llama3.2:latest",
                "available": True,
                "pulled": True,
            }
            # ... unless the caller says not to.
            with pytest.raises(ModelNotFound, match="is not available locally"):
                await models.ensure("tinyllama", pull=False)
    assert REGISTRY.snapshot()["counters"]["ollama.model.deleted"] == 2


async def test_validate_and_default_need_no_server(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    async with OllamaClient(DOWN) as client:
        models = Models(client, make_settings(DOWN), state_path=tmp_path / "w.json")
        assert validate_result(models.validate("llama3")) == {
            "valid": True,
            "normalized": "llama3:latest",
            "message": "'llama3' is a valid model name (llama3:latest)",
        }
        bad = validate_result(models.validate("bad name"))
        assert bad["valid"] is False and "not allowed" in bad["message"]
        assert default_result(models.default()) == {"model": "llama3:8b"}
        with pytest.raises(InvalidModelName):
            await models.ensure("bad name")


async def test_warm_list_changes_persist_for_the_next_instance(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "warm.json"
    settings = make_settings(DOWN, warm_models=("llama3.2", "phi3"), warm_keep_alive="1h")

    def empty_ps(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"models": []})

    async with OllamaClient(DOWN, transport=httpx.MockTransport(empty_ps)) as client:
        first = Models(client, settings, state_path=state)
        await first.warm_add("qwen2.5:0.5b", keep_alive="30m")
        await first.warm_remove("llama3.2")
        await first.warm_remove("never-warm")  # idempotent
        with pytest.raises(KeepAliveError, match="missing unit"):
            await first.warm_add("mistral", keep_alive="300")
        with pytest.raises(KeepAliveError, match="would unload each model"):
            await first.warm_add("mistral", keep_alive=0)
        second = Models(client, settings, state_path=state)
        rows = warm_result(await second.warm_list())["models"]
    assert [(r["name"], r["keep_alive"], r["source"]) for r in rows] == [
        ("phi3:latest", "1h", "config"),
        ("qwen2.5:0.5b", "30m", "runtime"),
    ]
    assert rows[0] == {**rows[0], "loaded": False, "expires_at": None, "last_warmed_at": None}
    assert state.stat().st_mode & 0o777 == 0o600
    assert json.loads(state.read_text())["removed"] == ["llama3.2:latest"]


async def test_an_unreadable_warm_file_is_set_aside_not_fatal(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    state = tmp_path / "warm.json"
    state.write_text("{not json")
    async with OllamaClient(DOWN) as client:
        models = Models(client, make_settings(DOWN, warm_models=("phi3",)), state_path=state)
        # the server is down: last known state
        rows = warm_result(await models.warm_list())["models"]
    assert [r["name"] for r in rows] == ["phi3:latest"]
    assert (tmp_path / "warm.json.bad").read_text() == "{not json"


async def test_warm_changes_that_cannot_be_saved_are_refused_and_change_nothing(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    # A state dir under a regular file cannot be created, whoever runs n3d (root too).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state = blocker / "n3" / "warm.json"
    deleted: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/delete":
            deleted.append(json.loads(request.content)["model"])
        return httpx.Response(200, json={"models": []})

    settings = make_settings(DOWN, warm_models=("phi3",))
    async with OllamaClient(DOWN, transport=httpx.MockTransport(server)) as client:
        models = Models(client, settings, state_path=state)
        for change in (
            models.warm_add("qwen2.5:0.5b", keep_alive="30m"),
            models.warm_remove("phi3"),
            models.delete("phi3"),  # a warm model leaves the list first: refused before
        ):
            with pytest.raises(StateNotSaved) as info:
                await change
            assert str(state) in info.value.message and info.value.path == str(state)
            fault = fault_of(info.value)
            assert fault is not None
            assert fault.code == 1013 and fault.data["kind"] == "state_not_saved"
        rows = warm_result(await models.warm_list())["models"]
    assert [(r["name"], r["source"]) for r in rows] == [("phi3:latest", "config")]
    assert deleted == []  # nothing was deleted either


async def test_a_failed_delete_puts_a_warm_model_back_as_it_was(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "warm.json"

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/delete":
            return httpx.Response(500, json={"error": "disk on fire"})
        return httpx.Response(200, json={"models": []})

    settings = make_settings(DOWN, warm_models=("phi3",))
    async with OllamaClient(DOWN, transport=httpx.MockTransport(server)) as client:
        models = Models(client, settings, state_path=state)
        await models.warm_add("qwen2.5:0.5b", keep_alive="30m")
        for model in ("phi3", "qwen2.5:0.5b"):
            with pytest.raises(OllamaError, match="disk on fire"):
                await models.delete(model)
        rows = warm_result(await models.warm_list())["models"]
    assert [(r["name"], r["keep_alive"], r["source"]) for r in rows] == [
        ("phi3:latest", -1, "config"),  # still from the config, not turned into a runtime entry
        ("qwen2.5:0.5b", "30m", "runtime"),
    ]
    assert json.loads(state.read_text())["removed"] == []


@pytest.mark.parametrize(
    ("keep_alive", "reason"),
    [
        (1e-320, "Ollama rounds it to 0"),
        ("0.5ns", "Ollama rounds it to 0"),
        (1e10, "-1 for forever"),
        (0.5, "under 1 s"),
        (math.inf, "finite"),
    ],
)
async def test_warm_add_refuses_a_keep_alive_the_config_would_refuse(
    make_settings: MakeSettings, tmp_path: Path, keep_alive: str | float, reason: str
) -> None:
    async with OllamaClient(DOWN) as client:
        models = Models(client, make_settings(DOWN), state_path=tmp_path / "w.json")
        with pytest.raises(KeepAliveError, match=reason):
            await models.warm_add("qwen2.5:0.5b", keep_alive=keep_alive)
        assert models.keeper.entries() == []
    assert not (tmp_path / "w.json").exists()
