"""The seed's OllamaEditorTools: answered by n3d when it runs, by Ollama when it does not."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from n3d import editor_tools
from n3d.editor_tools import OllamaEditorTools
from n3d.testing.simulator import SimulatorProcess, free_port

from .conftest import Daemon


@pytest.fixture
def lone_sim(tmp_path: Path) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(tmp_path, env={"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2"})
    sim.start().wait_ready()
    yield sim
    sim.kill_group()


@pytest.mark.slow
def test_with_a_daemon_the_answers_come_from_it(daemon: Daemon) -> None:
    daemon.call("models.pull", {"model": "qwen2.5:0.5b"}, timeout=30)
    tools = OllamaEditorTools(socket=daemon.socket)
    status = anyio.run(tools.check_status)
    assert status == {
        "reachable": True,
        "base_url": f"http://127.0.0.1:{daemon.port}",
        "models_count": 1,
        "models": ["qwen2.5:0.5b"],
        "daemon": True,
    }
    models = anyio.run(tools.list_available_models)
    assert [set(m) for m in models] == [{"name", "size", "modified_at", "digest"}]
    assert tools.get_default_model() == "llama3:8b"
    daemon.call("server.stop", timeout=30)
    stopped = anyio.run(tools.check_status)
    assert stopped["reachable"] is False and "stopped" in stopped["error"]


@pytest.mark.slow
def test_without_a_daemon_they_ask_ollama_directly(
    lone_sim: SimulatorProcess, tmp_path: Path
) -> None:
    tools = OllamaEditorTools(socket=tmp_path / "nobody.sock")
    status = anyio.run(tools.check_status, lone_sim.url)
    assert status["reachable"] is True and status["models"] == ["llama3.2:latest"]
    assert status["daemon"] is False
    models = anyio.run(tools.list_available_models, lone_sim.url)
    assert models[0]["name"] == "llama3.2:latest" and models[0]["size"] > 0


def test_nothing_running_gives_the_seeds_unreachable_shape(tmp_path: Path) -> None:
    tools = OllamaEditorTools(socket=tmp_path / "nobody.sock")
    url = f"http://127.0.0.1:{free_port()}"
    status = anyio.run(tools.check_status, url)
    assert status["reachable"] is False and status["base_url"] == url
    assert "Could not reach Ollama" in status["error"] and "ollama serve" in status["suggestion"]
    assert anyio.run(tools.list_available_models, url) == []


def test_name_checks_and_capabilities_need_nothing_running() -> None:
    assert OllamaEditorTools.validate_model_name("llama3") == {
        "is_valid": True,
        "message": "'llama3' is a valid model name (llama3:latest)",
        "normalized": "llama3:latest",
    }
    bad = OllamaEditorTools.validate_model_name("llama 3")
    assert bad["is_valid"] is False and "' '" in bad["message"]
    caps = OllamaEditorTools.get_supported_capabilities()
    assert caps["chat"] and caps["streaming"] and caps["embeddings"]


@pytest.mark.slow
def test_a_daemon_that_never_answers_counts_as_absent(
    daemon: Daemon, lone_sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(editor_tools, "_DAEMON_TIMEOUT_S", 0.5)
    monkeypatch.setenv("HOME", str(daemon.home))
    monkeypatch.setenv("NAMEL3SS_OLLAMA_BASE_URL", lone_sim.url)  # where the fallback goes
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        tools = OllamaEditorTools(socket=daemon.socket)
        # Would hang forever without the daemon timeout (pytest's timeout ends it).
        status = anyio.run(tools.check_status)
        assert status["reachable"] is True and status["daemon"] is False
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
