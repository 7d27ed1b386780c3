"""`/api/show`, `DELETE /api/delete` and `/api/copy` with Ollama's bodies and quoting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from n3d.testing.simulator import SimulatorProcess

pytestmark = pytest.mark.slow

StartSim = Callable[..., SimulatorProcess]


def test_show_reports_details_info_and_capabilities(client_models: httpx.Client) -> None:
    reply = client_models.post("/api/show", json={"model": "llama3.2"})
    assert reply.status_code == 200
    body = reply.json()
    assert {"license", "modelfile", "template", "details", "model_info", "capabilities",
            "modified_at"} <= set(body)
    assert body["model_info"]["general.architecture"] == "llama"
    assert body["model_info"]["llama.context_length"] == 131072
    assert "completion" in body["capabilities"]
    embed = client_models.post("/api/show", json={"name": "nomic-embed-text"}).json()
    assert embed["capabilities"] == ["embedding"]


def test_show_errors(client_models: httpx.Client) -> None:
    reply = client_models.post("/api/show", json={"model": "ghost"})
    assert (reply.status_code, reply.json()) == (404, {"error": "model 'ghost' not found"})
    reply = client_models.post("/api/show", json={"model": ""})
    assert (reply.status_code, reply.json()) == (400, {"error": "model is required"})


def test_delete_answers_empty_200_and_removes_model(client_models: httpx.Client) -> None:
    reply = client_models.request("DELETE", "/api/delete", json={"model": "llama3.2"})
    assert reply.status_code == 200
    assert reply.content == b""
    names = [m["name"] for m in client_models.get("/api/tags").json()["models"]]
    assert names == ["nomic-embed-text:latest"]


def test_delete_unknown_is_404_with_single_quotes(client_models: httpx.Client) -> None:
    reply = client_models.request("DELETE", "/api/delete", json={"model": "ghost"})
    assert (reply.status_code, reply.json()) == (404, {"error": "model 'ghost' not found"})


def test_delete_matches_names_case_insensitively(client_models: httpx.Client) -> None:
    reply = client_models.request("DELETE", "/api/delete", json={"name": "LLAMA3.2:Latest"})
    assert reply.status_code == 200


def test_copy_creates_a_second_name(client_models: httpx.Client) -> None:
    reply = client_models.post("/api/copy", json={"source": "llama3.2",
                                                  "destination": "mine/assistant:v1"})
    assert reply.status_code == 200
    assert reply.content == b""
    models = {m["name"]: m for m in client_models.get("/api/tags").json()["models"]}
    assert models["mine/assistant:v1"]["digest"] == models["llama3.2:latest"]["digest"]


def test_copy_errors_use_go_double_quotes(client_models: httpx.Client) -> None:
    reply = client_models.post("/api/copy", json={"source": "ghost", "destination": "x"})
    assert (reply.status_code, reply.json()) == (404, {"error": 'model "ghost" not found'})
    reply = client_models.post("/api/copy", json={"source": "bad name", "destination": "x"})
    assert (reply.status_code, reply.json()) == (400, {"error": 'source "bad name" is invalid'})
    reply = client_models.post("/api/copy", json={"source": "llama3.2", "destination": "a:"})
    assert (reply.status_code, reply.json()) == (400, {"error": 'destination "a:" is invalid'})


def test_models_survive_a_restart(start_sim: StartSim, tmp_path: Path) -> None:
    first = start_sim(workdir=tmp_path / "one")
    httpx.post(first.url + "/api/pull", json={"model": "all-minilm", "stream": False})
    assert first.terminate() == 0
    second = start_sim(workdir=tmp_path / "one", port=first.port)
    names = [m["name"] for m in httpx.get(second.url + "/api/tags").json()["models"]]
    assert names == ["all-minilm:latest"]
