"""`/api/pull` as research/ollama.md §1 describes it: order, fields, errors, sharing."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable

import httpx
import pytest

from n3d.testing.simulator import SimulatorProcess

pytestmark = pytest.mark.slow

StartSim = Callable[..., SimulatorProcess]


def _stream(client: httpx.Client, body: dict[str, object]) -> tuple[httpx.Response, list[dict]]:
    with client.stream("POST", "/api/pull", json=body) as reply:
        lines = [json.loads(line) for line in reply.iter_lines() if line]
    return reply, lines


def test_pull_streams_ollamas_lines_in_order(client: httpx.Client) -> None:
    reply, lines = _stream(client, {"model": "qwen2.5:0.5b"})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/x-ndjson"
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layer_lines = lines[1:-3]
    assert layer_lines, "per-layer progress expected"
    for line in layer_lines:
        assert re.fullmatch(r"pulling [0-9a-f]{12}", line["status"])
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", line["digest"])
        assert line["status"][8:] == line["digest"][7:19]
        assert line["total"] > 0
        if "completed" in line:
            assert 0 < line["completed"] <= line["total"]
    # The big layer reports progress several times and starts with completed omitted.
    first_digest = layer_lines[0]["digest"]
    big = [line for line in layer_lines if line["digest"] == first_digest]
    assert "completed" not in big[0]
    assert len(big) >= 3
    assert big[-1]["completed"] == big[-1]["total"]
    completed = [line.get("completed", 0) for line in big]
    assert completed == sorted(completed)


def test_pull_of_installed_model_sends_one_complete_line_per_layer(
        client_models: httpx.Client) -> None:
    _, lines = _stream(client_models, {"model": "llama3.2"})
    layer_lines = lines[1:-3]
    digests = [line["digest"] for line in layer_lines]
    assert len(digests) == len(set(digests))
    assert all(line["completed"] == line["total"] for line in layer_lines)


def test_pull_stream_false_returns_one_success_object(client: httpx.Client) -> None:
    reply = client.post("/api/pull", json={"model": "all-minilm", "stream": False})
    assert reply.status_code == 200
    assert reply.json() == {"status": "success"}
    names = [m["name"] for m in client.get("/api/tags").json()["models"]]
    assert names == ["all-minilm:latest"]


def test_deprecated_name_field_is_accepted(client: httpx.Client) -> None:
    reply = client.post("/api/pull", json={"name": "all-minilm", "stream": False})
    assert reply.json() == {"status": "success"}


def test_unknown_model_streams_200_then_error_line(client: httpx.Client) -> None:
    reply, lines = _stream(client, {"model": "no-such-model"})
    assert reply.status_code == 200
    assert lines == [{"status": "pulling manifest"},
                     {"error": "pull model manifest: file does not exist"}]


def test_unknown_model_without_stream_is_500(client: httpx.Client) -> None:
    reply = client.post("/api/pull", json={"model": "no-such-model", "stream": False})
    assert reply.status_code == 500
    assert reply.json() == {"error": "pull model manifest: file does not exist"}


@pytest.mark.parametrize("name", ["", "bad name", "m:", "/m", "a" * 81])
def test_invalid_name_is_400(client: httpx.Client, name: str) -> None:
    reply = client.post("/api/pull", json={"model": name})
    assert reply.status_code == 400
    assert reply.json() == {"error": "invalid model name"}


def test_concurrent_pulls_share_one_download(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_PULL_SECONDS": "0.8"})
    results: list[list[dict]] = []

    def pull() -> None:
        with httpx.Client(base_url=sim.url, timeout=10) as c:
            results.append(_stream(c, {"model": "qwen2.5:0.5b"})[1])

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r[-1] == {"status": "success"} for r in results)
    downloaded = re.findall(r"downloading ([0-9a-f]{12})", sim.stderr())
    assert sorted(downloaded) == sorted(set(downloaded))  # each blob fetched once
    assert len(downloaded) == 4


def test_pulled_model_is_on_disk_like_ollama(sim: SimulatorProcess,
                                             client: httpx.Client) -> None:
    client.post("/api/pull", json={"model": "llama3.2", "stream": False})
    manifest = sim.models_dir / "manifests/registry.ollama.ai/library/llama3.2/latest"
    data = json.loads(manifest.read_text())
    assert data["schemaVersion"] == 2
    for layer in [*data["layers"], data["config"]]:
        assert (sim.models_dir / "blobs" / layer["digest"].replace(":", "-")).is_file()
