"""Servers and their models directories: OLLAMA_NOPRUNE, and one pull for a shared directory.

A starting ``ollama serve`` prunes blobs it does not know, so servers sharing one
models directory make each other's models vanish (Ollama #2358, #8891): n3d gives
``OLLAMA_NOPRUNE=1`` to every managed server whose effective ``OLLAMA_MODELS`` is
shared, and to no other. Read where it counts: each serve's own environment
(``/proc/PID/environ``). A pull without ``server`` runs once per distinct
directory (the simulators' request logs count the ``/api/pull`` calls) and every
server lists the model afterwards, through n3d and straight from the simulator.
"""

from __future__ import annotations

import sys

import httpx
import pytest

from n3d.testing import wait_until
from n3d.testing.servers import FleetProcess

from .conftest import MakeFleet, environ

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/environ"),
]

PULLED = "qwen2.5:0.5b"


def _serve_env(d: FleetProcess) -> dict[str, dict[str, str]]:
    return {name: environ(entry["pid"]) for name, entry in d.wait_servers().items()}


def _pulls(d: FleetProcess, at_least: int) -> dict[str, int]:
    """``/api/pull`` calls per server, once they add up to ``at_least`` (a simulator logs
    a request just after its answer is sent: n3d may have the answer first)."""

    def counted() -> dict[str, int] | None:
        found = {name: len(d.requests_of(name, "/api/pull")) for name in d.names}
        return found if sum(found.values()) >= at_least else None

    found: dict[str, int] = wait_until(counted, 10, f"{at_least} pulls logged")
    return found


def _listed_everywhere(d: FleetProcess, model: str) -> None:
    for name in d.names:
        through_n3d = d.call("models.list", {"server": name, "refresh": True})["models"]
        assert model in [m["name"] for m in through_n3d], (name, through_n3d)
        tags = httpx.get(f"{d.url_of(name)}/api/tags", timeout=10).json()["models"]
        assert model in [m["name"] for m in tags], (name, tags)
    merged = [m for m in d.call("models.list", {"refresh": True})["models"] if m["name"] == model]
    assert len(merged) == 1, merged  # once, with every server that has it
    assert sorted(merged[0]["servers"]) == sorted(d.names), merged


def test_servers_sharing_a_models_directory_get_noprune_and_one_pull(fleet: MakeFleet) -> None:
    d = fleet(["a", "b", "c"])
    env = _serve_env(d)
    shared = str(d.models_dir_of("a"))
    for name in d.names:
        assert env[name].get("OLLAMA_MODELS") == shared, name
        assert env[name].get("OLLAMA_NOPRUNE") == "1", name
    result = d.call("models.pull", {"model": PULLED}, timeout=60)
    assert result["status"] == "success"
    _listed_everywhere(d, PULLED)
    pulls = _pulls(d, 1)
    assert sum(pulls.values()) == 1, pulls  # one directory, one download


def test_servers_with_their_own_directories_get_no_noprune(fleet: MakeFleet) -> None:
    # a and b share n3d's OLLAMA_MODELS; c has its own: only a and b share.
    d = fleet(["a", "b", "c"], own_models=["c"])
    env = _serve_env(d)
    assert env["a"]["OLLAMA_MODELS"] == env["b"]["OLLAMA_MODELS"] != env["c"]["OLLAMA_MODELS"]
    assert env["a"].get("OLLAMA_NOPRUNE") == env["b"].get("OLLAMA_NOPRUNE") == "1"
    assert "OLLAMA_NOPRUNE" not in env["c"], env["c"]
    result = d.call("models.pull", {"model": PULLED}, timeout=60)
    assert result["status"] == "success"
    _listed_everywhere(d, PULLED)
    pulls = _pulls(d, 2)
    assert pulls["a"] + pulls["b"] == 1 and pulls["c"] == 1, pulls  # once per directory


def test_no_server_gets_noprune_when_none_shares(fleet: MakeFleet) -> None:
    d = fleet(["a", "b"], own_models=["a", "b"])
    for name, env in _serve_env(d).items():
        assert "OLLAMA_NOPRUNE" not in env, name
