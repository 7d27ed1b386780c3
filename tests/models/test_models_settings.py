"""A config reload reaches the model service: `Models.apply_settings` and `Daemon.reload`."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from n3d.api.models import default_result, ensure_result, warm_result
from n3d.api.servers import ServerParts
from n3d.config import load_settings
from n3d.config.reload import plan_reload
from n3d.daemon import Daemon
from n3d.errors import ModelNotFound
from n3d.models import Models
from n3d.ollama.client import OllamaClient
from n3d.ollama.names import same_model
from n3d.ollama.types import LoadedModel
from n3d.supervisor import Supervisor

from .models_support import Events, MakeSettings, StartSim, running, wait_until

PRELOAD = {"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2,tinyllama"}
DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port


async def loaded(client: OllamaClient, model: str) -> LoadedModel | None:
    return next((m for m in await client.ps() if same_model(m.name, model)), None)


def within_a_day(model: LoadedModel | None) -> bool:
    """Loaded with a finite keep_alive (forever shows as a date in the year 2318)."""
    expires = model.expires if model is not None else None
    return expires is not None and expires - datetime.now(UTC) < timedelta(days=1)


@pytest.mark.slow
async def test_new_settings_reach_ensure_default_the_cache_pulls_and_the_keeper(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim(PRELOAD)
    events = Events()
    old = make_settings(sim.url, warm_models=("llama3.2",), auto_pull_model=False)
    async with OllamaClient(sim.url) as client:
        models = Models(client, old, publish=events, state_path=tmp_path / "w.json", poll_s=0.1)
        async with running(models):
            await models.warm_add("tinyllama", keep_alive="1h")  # a run-time entry: it stays
            await wait_until(lambda: loaded(client, "llama3.2"), 5, "the configured warm-up")
            with pytest.raises(ModelNotFound):
                await models.ensure("qwen2.5:0.5b")  # auto_pull_model is off

            new = make_settings(
                "http://127.0.0.1:1",  # base_url needs an n3d restart: not applied
                warm_models=("phi3",),
                auto_pull_model=True,
                default_model="mistral:7b",
                model_cache_ttl_s=7.0,
                pull_timeout_s=42.0,
            )
            plan = plan_reload(models.settings, new)
            assert plan.needs_restart == ("ollama.base_url",)
            models.apply_settings(plan.effective)

            assert default_result(models.default()) == {"model": "mistral:7b"}
            assert ensure_result(await models.ensure("qwen2.5:0.5b")) == {
                "model": "qwen2.5:0.5b",
                "available": True,
                "pulled": True,
            }
            assert (models.cache.ttl_s, models.pulls.timeout_s) == (7.0, 42.0)
            assert (models.base_url, models.settings.ollama.base_url) == (sim.url, sim.url)
            rows = warm_result(await models.warm_list())["models"]
            assert [(r["name"], r["source"]) for r in rows] == [
                ("phi3:latest", "config"),
                ("tinyllama:latest", "runtime"),
            ]
            # phi3 is not installed: the keeper, now with auto_pull, pulls and warms it.
            await wait_until(lambda: loaded(client, "phi3"), 10, "the new config warm model")

            # llama3.2 left [warm].models: handed back with [ollama].keep_alive, as warm.remove.
            async def handed_back() -> bool:
                return within_a_day(await loaded(client, "llama3.2"))

            await wait_until(handed_back, 5, "llama3.2 handed back")
    assert events.of("warm", action="pulling", model="phi3:latest")
    assert events.of("warm", action="warmed", model="tinyllama:latest")


@pytest.mark.slow
async def test_a_new_warm_keep_alive_and_num_ctx_reach_models_already_loaded(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim(PRELOAD)
    events = Events()
    old = make_settings(sim.url, warm_models=("llama3.2",))
    async with OllamaClient(sim.url) as client:
        models = Models(client, old, publish=events, state_path=tmp_path / "w.json", poll_s=0.1)
        async with running(models):
            await wait_until(lambda: loaded(client, "llama3.2"), 5, "the first warm-up")
            assert not within_a_day(await loaded(client, "llama3.2"))  # forever

            new = make_settings(
                sim.url, warm_models=("llama3.2",), warm_keep_alive="30m", num_ctx=2048
            )
            models.apply_settings(new)

            async def rewarmed() -> bool:
                now = await loaded(client, "llama3.2")
                return within_a_day(now) and now is not None and now.context_length == 2048

            await wait_until(rewarmed, 5, "a warm request with the new keep_alive and num_ctx")
            # /api/ps lists the reloaded model a moment before n3d has the load's answer:
            # leaving at once could cancel the keeper before it says it warmed.
            done = {"action": "warmed", "model": "llama3.2:latest", "keep_alive": "30m"}
            await wait_until(lambda: bool(events.of("warm", **done)), 5, "the warmed event")
            assert models.keeper.num_ctx == 2048


async def test_the_poll_interval_follows_the_health_check_interval(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    async with OllamaClient(DOWN) as client:
        models = Models(client, make_settings(DOWN), state_path=tmp_path / "w.json")
        assert models.keeper.poll_s == 10.0  # the default 30 s health interval / 3
        models.apply_settings(make_settings(DOWN, health_check_interval_s=6.0))
        assert models.keeper.poll_s == 2.0


async def test_a_reload_reaches_the_model_clients_timeout_and_num_ctx(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """The daemon's client is built with `health_timeout` and `num_ctx`: a reload must
    reach its calls, not only the health probes."""
    old = make_settings(DOWN)
    timeout_s, num_ctx = old.server.health_timeout_s, old.ollama.num_ctx
    async with OllamaClient(DOWN, timeout_s=timeout_s, num_ctx=num_ctx) as client:
        models = Models(client, old, state_path=tmp_path / "w.json")
        new = make_settings(DOWN, num_ctx=4096)
        server = dataclasses.replace(new.server, health_timeout_s=0.25)
        new = dataclasses.replace(new, server=server)
        models.apply_settings(plan_reload(old, new).effective)
        assert (client.timeout_s, client.num_ctx) == (0.25, 4096)


async def _never_probed(timeout_s: float) -> float:
    raise AssertionError("the supervisor is not run here")


async def test_daemon_reload_hands_the_new_settings_to_the_model_service(
    tmp_path: Path,
) -> None:
    """SIGHUP and `config.reload` both go through Daemon.reload()."""
    config = tmp_path / "n3d.toml"
    config.write_text(f'[ollama]\nbase_url = "{DOWN}"\ndefault_model = "phi3"\n')
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    settings = load_settings(config, env)
    daemon = Daemon(settings, command=("ollama", "serve"), env=env)
    async with OllamaClient(DOWN) as client:
        models = Models(client, settings, state_path=tmp_path / "w.json")
        sup = Supervisor(settings, probe=_never_probed)
        daemon.servers = [ServerParts("default", sup, models)]
        config.write_text(
            f'[ollama]\nbase_url = "{DOWN}"\ndefault_model = "mistral:7b"\n'
            'auto_pull_model = true\n[warm]\nmodels = ["llama3.2"]\n'
        )
        assert daemon.reload() is True
        assert default_result(daemon.models.default()) == {"model": "mistral:7b"}
        assert daemon.models.settings.ollama.auto_pull_model is True
        assert [e.name for e in daemon.models.keeper.entries()] == ["llama3.2:latest"]
