"""Two servers under one n3d: real simulators, each supervised on its own."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import tomli_w

from n3d.client import RpcError
from n3d.testing import DaemonProcess, wait_until
from n3d.testing.simulator import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def two(short_dir: Path) -> Iterator[DaemonProcess]:
    """One n3d with `[[servers]]` a and b (ports of their own), managed, fast timings."""
    home = short_dir / "d"
    home.mkdir(mode=0o700)
    d = DaemonProcess(home)
    config = {
        "ollama": {"health_check_interval": 1},
        "server": {"mode": "managed", "stop_timeout": 3},
        "restart": {"backoff_initial": 0.05},
        "servers": [{"name": "a", "port": free_port()}, {"name": "b", "port": free_port()}],
    }
    d.config_path.write_text(tomli_w.dumps(config))
    try:
        d.start().wait_socket()
        yield d
    finally:
        d.cleanup()


def servers(d: DaemonProcess) -> dict[str, Any]:
    return {s["name"]: s for s in d.call("status")["servers"]}


def all_running(d: DaemonProcess) -> dict[str, Any] | None:
    found = servers(d)
    return found if all(s["state"] == "running" for s in found.values()) else None


def test_each_server_runs_and_a_killed_one_restarts_alone(two: DaemonProcess) -> None:
    first = wait_until(lambda: all_running(two), 30, "both servers running")
    assert list(first) == ["a", "b"]
    status = two.call("status")
    assert status["server"]["name"] == "a" and status["server"]["pid"] == first["a"]["pid"]
    assert first["a"]["base_url"] != first["b"]["base_url"]
    # Each its own pid file: the first keeps ollama.pid.
    assert (two.runtime / "ollama.pid").read_text().split()[0] == str(first["a"]["pid"])
    assert (two.runtime / "ollama-b.pid").read_text().split()[0] == str(first["b"]["pid"])
    # One models directory (OLLAMA_MODELS of the harness): both children get NOPRUNE.
    for name in ("a", "b"):
        assert psutil.Process(first[name]["pid"]).environ().get("OLLAMA_NOPRUNE") == "1"

    os.kill(first["b"]["pid"], signal.SIGKILL)

    def b_again() -> dict[str, Any] | None:
        found = all_running(two)
        return found if found and found["b"]["pid"] != first["b"]["pid"] else None

    after = wait_until(b_again, 30, "b restarted")
    assert after["b"]["restarts"] == 1
    assert after["a"]["pid"] == first["a"]["pid"] and after["a"]["restarts"] == 0
    edges = [e for e in two.events("server.state") if e.get("to") != "starting"]
    assert {e["server"] for e in edges if e["to"] == "backoff"} == {"b"}
    assert {e["server"] for e in edges} == {"a", "b"}  # every state line names its server


def test_the_server_param_picks_one_and_an_unknown_name_is_1011(two: DaemonProcess) -> None:
    wait_until(lambda: all_running(two), 30, "both servers running")
    assert two.call("health", {"server": "b", "force": True})["server"] == "b"
    assert two.call("health")["server"] == "a"
    with pytest.raises(RpcError) as info:
        two.call("health", {"server": "c"})
    assert info.value.code == 1011
    assert info.value.data == {
        "kind": "unknown_server",
        "server": "c",
        "suggestion": "Servers are: a, b (see: n3ctl status)",
    }
    stopped = two.call("server.stop", {"server": "b"}, timeout=30)
    assert stopped["server"]["name"] == "b" and stopped["state"] == "stopped"
    found = servers(two)
    assert found["a"]["state"] == "running" and found["b"]["state"] == "stopped"
