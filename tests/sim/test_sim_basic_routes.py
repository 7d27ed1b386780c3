"""Conventions and simple routes (research/ollama.md §1 "Conventions", `/`, version, tags)."""

from __future__ import annotations

import re

import httpx
import pytest

from n3d.testing.simulator import SimulatorProcess

pytestmark = pytest.mark.slow


def test_root_says_ollama_is_running(client: httpx.Client) -> None:
    reply = client.get("/")
    assert reply.status_code == 200
    assert reply.text == "Ollama is running"
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.headers["content-length"] == "17"


def test_head_root_has_headers_and_no_body(client: httpx.Client) -> None:
    reply = client.head("/")
    assert reply.status_code == 200
    assert reply.headers["content-length"] == "17"
    assert reply.content == b""


def test_version_has_no_v_prefix(client: httpx.Client) -> None:
    reply = client.get("/api/version")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    assert re.fullmatch(r"\d+\.\d+\.\d+", reply.json()["version"])
    assert client.head("/api/version").status_code == 200


def test_unknown_path_is_gin_text_404(client: httpx.Client) -> None:
    reply = client.get("/health")
    assert reply.status_code == 404
    assert reply.text == "404 page not found"
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/pull"), ("POST", "/api/tags"),
                                              ("HEAD", "/api/ps"), ("POST", "/api/delete")])
def test_wrong_method_is_gin_text_405(client: httpx.Client, method: str, path: str) -> None:
    reply = client.request(method, path)
    assert reply.status_code == 405
    if method != "HEAD":
        assert reply.text == "405 method not allowed"
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"


def test_tags_empty_is_a_list_never_null(client: httpx.Client) -> None:
    reply = client.get("/api/tags")
    assert reply.status_code == 200
    assert reply.content == b'{"models":[]}'


def test_tags_show_latest_and_details(client_models: httpx.Client) -> None:
    models = client_models.get("/api/tags").json()["models"]
    names = {m["name"] for m in models}
    assert names == {"llama3.2:latest", "nomic-embed-text:latest"}
    for m in models:
        assert m["model"] == m["name"]
        assert re.fullmatch(r"[0-9a-f]{64}", m["digest"])  # no sha256: prefix
        assert m["size"] > 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
                            m["modified_at"])
        assert set(m["details"]) >= {"parent_model", "format", "family", "families",
                                     "parameter_size", "quantization_level"}
    llama = next(m for m in models if m["name"] == "llama3.2:latest")
    assert llama["details"]["family"] == "llama"
    assert llama["details"]["parameter_size"] == "3.2B"
    assert llama["details"]["quantization_level"] == "Q4_K_M"


def test_tags_sorted_newest_first(client: httpx.Client) -> None:
    for model in ("qwen2.5:0.5b", "all-minilm", "phi3:mini"):
        assert client.post("/api/pull", json={"model": model, "stream": False}).status_code == 200
    names = [m["name"] for m in client.get("/api/tags").json()["models"]]
    assert names == ["phi3:mini", "all-minilm:latest", "qwen2.5:0.5b"]


@pytest.mark.parametrize("path", ["/api/pull", "/api/generate", "/api/chat", "/api/show",
                                  "/api/copy", "/api/embed", "/api/embeddings"])
def test_empty_body_is_missing_request_body(client: httpx.Client, path: str) -> None:
    reply = client.post(path)
    assert reply.status_code == 400
    assert reply.json() == {"error": "missing request body"}
    assert reply.headers["content-type"] == "application/json; charset=utf-8"


def test_bad_json_is_400_with_go_decoder_text(client: httpx.Client) -> None:
    reply = client.post("/api/generate", content=b"{nope")
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("invalid character")
    reply = client.post("/api/generate", json={"model": 5})
    assert reply.status_code == 400
    assert "cannot unmarshal number" in reply.json()["error"]


def test_host_guard_allows_loopback_names_and_rejects_others(sim: SimulatorProcess) -> None:
    for host in ("localhost", f"127.0.0.1:{sim.port}", "[::1]", "box.local"):
        assert httpx.get(sim.url + "/", headers={"Host": host}).status_code == 200
    reply = httpx.get(sim.url + "/", headers={"Host": "evil.example.com"})
    assert reply.status_code == 403
    assert reply.content == b""


def test_keep_alive_connection_serves_many_requests(client: httpx.Client) -> None:
    for _ in range(20):
        assert client.get("/api/version").status_code == 200
