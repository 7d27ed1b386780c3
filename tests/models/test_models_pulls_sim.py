"""Pull jobs against the simulator as a real subprocess (the issue's Must-show list)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from n3d.api.models import ensure_result, list_result, pull_result
from n3d.errors import ModelNotFound, PullFailed
from n3d.models import Models
from n3d.ollama.client import OllamaClient

from .models_support import Events, MakeSettings, StartSim, count_requests, running, wait_until

pytestmark = pytest.mark.slow


async def test_two_callers_pulling_one_model_share_one_download(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim({"OLLAMA_SIM_PULL_SECONDS": "1.0"})
    events = Events()
    async with OllamaClient(sim.url) as client:
        models = Models(
            client,
            make_settings(sim.url),
            publish=events,
            state_path=tmp_path / "warm.json",
            progress_interval_s=0.1,
        )
        seen: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
        results: dict[str, dict[str, Any]] = {}

        async def caller(who: str, spelling: str) -> None:
            async def progress(value: dict[str, Any]) -> None:
                seen[who].append(value)

            results[who] = pull_result(await models.pull(spelling, progress=progress))

        async with running(models), anyio.create_task_group() as tg:
            tg.start_soon(caller, "a", "qwen2.5:0.5b")
            tg.start_soon(caller, "b", "QWEN2.5:0.5b")  # same model as Ollama matches names

    await wait_until(lambda: count_requests(sim, "POST", "/api/pull") >= 1, what="request log")
    assert count_requests(sim, "POST", "/api/pull") == 1
    for who in ("a", "b"):
        assert results[who]["status"] == "success"
        assert results[who]["model"].lower() == "qwen2.5:0.5b"
        values = seen[who]
        assert values[0]["kind"] == "begin"
        assert values[0]["title"].lower() == "pulling qwen2.5:0.5b"
        assert values[-1] == {**values[-1], "kind": "end", "status": "success", "percentage": 100}
        assert any(v["kind"] == "report" and "percentage" in v for v in values)
        # 1 s of 60 ms lines, coalesced to one update per 0.1 s per waiter
        assert len(values) <= 15
    finals = [e for e in events.of("pull") if e["status"] == "success"]
    assert len(finals) == 1


async def test_failing_pull_gives_every_waiter_the_error_and_list_stays_true(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    control = tmp_path / "control.json"
    sim = start_sim({"OLLAMA_SIM_FAIL_PULLS": "1", "OLLAMA_SIM_CONTROL": str(control)})
    events = Events()
    async with OllamaClient(sim.url) as client:
        models = Models(
            client, make_settings(sim.url), publish=events, state_path=tmp_path / "warm.json"
        )
        async with running(models):
            assert list_result(await models.list())["models"] == []
            errors: list[BaseException] = []

            async def caller() -> None:
                try:
                    await models.pull("tinyllama")
                except PullFailed as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(caller)
            assert len(errors) == 3
            assert len({id(e) for e in errors}) == 3  # each waiter its own exception
            for err in errors:
                assert "no such host" in str(err)
                assert "Model: tinyllama:latest" in str(err)
                assert "Suggestion: Run the pull again" in str(err)
            assert events.of("pull", status="error")
            assert list_result(await models.list())["models"] == []

            # The registry comes back: the next pull succeeds and the cached list
            # (well within its TTL) shows the model without being asked to refresh.
            tmp = control.with_suffix(".tmp")
            tmp.write_text(json.dumps({"fail_pulls": False}))
            tmp.replace(control)

            async def pull_works() -> bool:
                try:
                    await models.pull("tinyllama")
                except PullFailed:
                    return False
                return True

            await wait_until(pull_works, what="the control file to be read")
            listed = list_result(await models.list())
            assert [m["name"] for m in listed["models"]] == ["tinyllama:latest"]
            assert listed["cached"] is False


async def test_unknown_model_is_model_not_found_with_check_the_name(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim()
    async with OllamaClient(sim.url) as client:
        models = Models(client, make_settings(sim.url), state_path=tmp_path / "warm.json")
        async with running(models):
            with pytest.raises(ModelNotFound) as caught:
                await models.pull("no-such-model:7b")
            with pytest.raises(ModelNotFound):
                await models.ensure("no-such-model:7b", pull=True)
    assert "Check the name" in str(caught.value)
    assert caught.value.kind == "model_not_found"


async def test_ensure_that_pulls_reports_the_pull_progress(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    """`ensure --pull` must show the request is alive, or n3ctl gives up and the pull
    is abandoned: the pull's work-done progress goes to ensure's sink too."""
    sim = start_sim({"OLLAMA_SIM_PULL_SECONDS": "0.6"})
    seen: list[dict[str, Any]] = []

    async def progress(value: dict[str, Any]) -> None:
        seen.append(value)

    async with OllamaClient(sim.url) as client:
        models = Models(
            client,
            make_settings(sim.url),
            state_path=tmp_path / "warm.json",
            progress_interval_s=0.05,
        )
        async with running(models):
            first = await models.ensure("qwen2.5:0.5b", pull=True, progress=progress)
            second = await models.ensure("qwen2.5:0.5b", pull=True, progress=progress)
    result, again = ensure_result(first), ensure_result(second)
    assert result == {"model": "qwen2.5:0.5b", "available": True, "pulled": True}
    assert again == {"model": "qwen2.5:0.5b", "available": True, "pulled": False}
    assert seen[0]["kind"] == "begin" and seen[0]["title"] == "Pulling qwen2.5:0.5b"
    assert any(v["kind"] == "report" and "percentage" in v for v in seen)
    assert seen[-1] == {**seen[-1], "kind": "end", "status": "success", "percentage": 100}
    assert [v["kind"] for v in seen].count("end") == 1  # nothing for the second, no pull
