"""Every method of DESIGN.md answered by a real daemon over its socket (issue 5)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import stat
from typing import Any

import pytest

from n3d import __version__
from n3d.client import Connection, RpcError

from .conftest import Daemon, wait_until

pytestmark = pytest.mark.slow


def test_status_has_every_section_of_the_design(daemon: Daemon) -> None:
    status = daemon.call("status")
    assert set(status) >= {"daemon", "server", "health", "resources", "models"}
    assert status["daemon"]["version"] == __version__
    assert status["daemon"]["socket"] == str(daemon.socket)
    server = status["server"]
    assert server["state"] == "running" and server["mode"] == "managed"
    assert server["base_url"] == f"http://127.0.0.1:{daemon.port}"
    assert {"pid", "version", "restarts", "since", "last_exit"} <= set(server)
    assert status["resources"]["processes"] >= 1 and status["resources"]["rss_bytes"] > 0
    # DESIGN.md's counts, and (added for n3ctl status) the names of the loaded and warm.
    assert set(status["models"]) == {"installed", "loaded", "warm", "loaded_names", "warm_names"}
    assert isinstance(status["models"]["loaded_names"], list)


def test_socket_is_private(daemon: Daemon) -> None:
    mode = daemon.socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_health_is_shared_inside_the_interval(daemon: Daemon) -> None:
    daemon.call("health", {"force": True})
    before = len(daemon.requests("/"))

    def ask(_: int) -> dict[str, Any]:
        result: dict[str, Any] = daemon.call("health")
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(ask, range(60)))
    assert all(a["ok"] and a["cached"] for a in answers)
    # the background check may add at most a probe or two in the meantime
    assert len(daemon.requests("/")) - before <= 2
    forced = daemon.call("health", {"force": True})
    assert forced["ok"] and not forced["cached"] and forced["version"]


def test_server_stop_start_restart(daemon: Daemon) -> None:
    assert daemon.call("server.stop", timeout=30)["state"] == "stopped"
    # No cached "ok" from the server that was just stopped.
    assert daemon.call("health")["ok"] is False
    with pytest.raises(RpcError) as info:
        daemon.call("models.pull", {"model": "qwen2.5:0.5b"})
    assert info.value.code == 1009 and info.value.data["kind"] == "server_not_running"
    assert daemon.call("server.start", timeout=30)["state"] == "running"
    first = daemon.call("status")["server"]["pid"]
    assert daemon.call("server.restart", timeout=30)["state"] == "running"
    assert daemon.call("status")["server"]["pid"] != first


def test_models_methods(daemon: Daemon) -> None:
    assert daemon.call("models.validate", {"model": "llama3"}) == {
        "valid": True,
        "normalized": "llama3:latest",
        "message": "'llama3' is a valid model name (llama3:latest)",
    }
    assert daemon.call("models.default") == {"model": "llama3:8b"}
    with pytest.raises(RpcError) as info:
        daemon.call("models.ensure", {"model": "qwen2.5:0.5b"})
    assert info.value.code == 1002
    assert "ollama pull qwen2.5:0.5b" in info.value.data["suggestion"]
    reports: list[dict[str, Any]] = []
    pulled = daemon.call("models.pull", {"model": "qwen2.5:0.5b"}, progress=reports.append)
    assert pulled["status"] == "success" and pulled["model"] == "qwen2.5:0.5b"
    assert reports[0]["kind"] == "begin" and reports[-1]["kind"] == "end"
    listed = daemon.call("models.list")
    assert [m["name"] for m in listed["models"]] == ["qwen2.5:0.5b"]
    assert daemon.call("models.ensure", {"model": "QWEN2.5:0.5b"})["available"] is True
    with pytest.raises(RpcError) as info:
        daemon.call("models.pull", {"model": "no-such-model"})
    assert info.value.code == 1002 and "check the name" in info.value.data["suggestion"].lower()
    assert daemon.call("models.delete", {"model": "qwen2.5:0.5b"})["deleted"] is True
    assert daemon.call("models.list", {"refresh": True})["models"] == []


def test_warm_add_loads_and_lists(daemon: Daemon) -> None:
    daemon.call("models.pull", {"model": "qwen2.5:0.5b"}, timeout=30)
    rows = daemon.call("warm.add", {"model": "qwen2.5:0.5b"})["models"]
    assert [r["name"] for r in rows] == ["qwen2.5:0.5b"]
    wait_until(lambda: daemon.call("warm.list")["models"][0]["loaded"], 10, "warm load")
    loaded = daemon.call("models.loaded")["models"]
    assert loaded[0]["warm"] is True and loaded[0]["expires_at"].startswith("23")
    assert daemon.call("warm.remove", {"model": "qwen2.5:0.5b"})["models"] == []


def test_params_are_validated_with_the_parameter_named(daemon: Daemon) -> None:
    with pytest.raises(RpcError) as info:
        daemon.call("models.pull", {})
    assert info.value.code == -32602 and "model" in info.value.message
    with pytest.raises(RpcError) as info:
        daemon.call("health", {"force": "yes"})
    assert info.value.code == -32602 and "force" in info.value.message
    with pytest.raises(RpcError) as info:
        daemon.call("status", {"surprise": 1})
    assert info.value.code == -32602 and "surprise" in info.value.message
    with pytest.raises(RpcError) as info:
        daemon.call("warm.add", {"model": "m", "keep_alive": "300"})
    assert info.value.code == -32602 and "missing unit" in info.value.message
    with pytest.raises(RpcError) as info:
        daemon.call("models.validate", ["a", "b"])
    assert info.value.code == -32602
    with pytest.raises(RpcError) as info:
        daemon.call("no.such.method")
    assert info.value.code == -32601


def test_rpc_discover_describes_exactly_the_dispatched_methods(daemon: Daemon) -> None:
    doc = daemon.call("rpc.discover")
    names = {m["name"] for m in doc["methods"]}
    design = {
        "status", "health", "server.start", "server.stop", "server.restart", "models.list",
        "models.loaded", "models.pull", "models.delete", "models.ensure", "models.validate",
        "models.default", "warm.list", "warm.add", "warm.remove", "capabilities", "metrics",
        "config.get", "config.reload", "events.subscribe", "events.unsubscribe", "rpc.discover",
        "requests.list", "requests.cancel", "metrics.prometheus",
    }  # fmt: skip
    assert names == design
    for name in names - {"rpc.discover"}:
        with pytest.raises(RpcError) as info:
            daemon.call(name, {"__probe__": 1})
        assert info.value.code == -32602  # dispatched, and its params are checked
    errors = doc["components"]["errors"]
    assert errors["model_not_found"]["code"] == 1002 and errors["timeout"]["code"] == 1005
    pull = next(m for m in doc["methods"] if m["name"] == "models.pull")
    assert pull["params"][0] == {
        "name": "model",
        "required": True,
        "description": "a model name, e.g. llama3:8b",
        "schema": {"type": "string"},
    }


def test_capabilities_metrics_and_config(daemon: Daemon) -> None:
    caps = daemon.call("capabilities")
    assert caps["chat"] and caps["streaming"] and "ndjson" in caps["daemon"]["framing"]
    daemon.call("status")
    metrics = daemon.call("metrics")
    assert metrics["histograms"]["n3d.rpc.duration"]["count"] >= 1
    assert "ollama.health.check_duration" in metrics["histograms"]
    config = daemon.call("config.get")
    assert config["file"] == str(daemon.config_path)
    assert config["sources"]["ollama.base_url"] == f"file:{daemon.config_path}"


def test_config_reload_keeps_the_old_config_when_the_new_one_is_bad(daemon: Daemon) -> None:
    text = daemon.config_path.read_text()
    daemon.config_path.write_text(
        text.replace("health_check_interval = 1", "health_check_interval = 2")
    )
    good = daemon.call("config.reload")
    assert good["reloaded"] is True
    assert good["values"]["ollama"]["health_check_interval"] == 2
    daemon.config_path.write_text("[ollama]\nport = 'x'\n")
    bad = daemon.call("config.reload")
    assert bad["reloaded"] is False and "ollama.port" in bad["error"]
    assert bad["values"]["ollama"]["health_check_interval"] == 2


def test_events_report_state_changes(daemon: Daemon) -> None:
    with Connection(daemon.socket, timeout=20) as watcher:
        assert watcher.call("events.subscribe", {"topics": ["server.state"]}) == {
            "topics": ["server.state"]
        }
        daemon.call("server.restart", timeout=30)
        seen = []
        for method, params in watcher.notifications():
            assert method == "event" and params["topic"] == "server.state"
            seen.append((params["from"], params["to"]))
            if params["to"] == "running":
                break
    assert seen[0] == ("running", "stopping") and seen[-1][1] == "running"
    with pytest.raises(RpcError) as info:
        daemon.call("events.subscribe", {"topics": ["gossip"]})
    assert info.value.code == -32602


def test_one_line_over_a_raw_socket_gets_one_line_back(daemon: Daemon) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(daemon.socket))
        sock.sendall(b'{"jsonrpc":"2.0","id":7,"method":"models.default"}\n')
        reply = sock.makefile("rb").readline()
    assert json.loads(reply) == {"jsonrpc": "2.0", "result": {"model": "llama3:8b"}, "id": 7}


def test_lsp_framing_is_answered_in_lsp_framing(daemon: Daemon) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"models.default"}'
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(daemon.socket))
        sock.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        reader = sock.makefile("rb")
        header = reader.readline()
        assert header.lower().startswith(b"content-length:")
        length = int(header.split(b":")[1])
        assert reader.readline() == b"\r\n"
        assert json.loads(reader.read(length))["result"] == {"model": "llama3:8b"}


def test_status_answers_at_once_while_ollama_hangs(daemon: Daemon) -> None:
    pid = daemon.call("status")["server"]["pid"]
    daemon.call("health", {"force": True})
    os.kill(pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        # A probe would take health_timeout (5 s); status must not wait for one.
        status = daemon.call("status", timeout=2)
        assert status["server"]["pid"] == pid and status["health"]["cached"] is True
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_reload_that_moves_the_server_waits_for_a_restart_of_n3d(daemon: Daemon) -> None:
    text = daemon.config_path.read_text()
    daemon.config_path.write_text(text.replace(str(daemon.port), str(daemon.port + 1)))
    reloaded = daemon.call("config.reload")
    assert reloaded["reloaded"] is True
    # config.get shows what runs: the old URL stays until n3d itself restarts.
    assert reloaded["values"]["ollama"]["base_url"] == f"http://127.0.0.1:{daemon.port}"
    assert daemon.call("server.restart", timeout=30)["state"] == "running"
    assert daemon.call("health", {"force": True})["ok"] is True
    assert any(
        e.get("keys") == ["ollama.base_url"] for e in daemon.events("config.reload_needs_restart")
    )


def test_status_counts_installed_models_without_anyone_listing_them(daemon: Daemon) -> None:
    def installed() -> int | None:
        count: int | None = daemon.call("status")["models"]["installed"]
        return count

    wait_until(lambda: installed() == 0, 10, "the listing made at server start")
    daemon.call("models.pull", {"model": "qwen2.5:0.5b"}, timeout=30)
    wait_until(lambda: installed() == 1, 10, "the listing made after the pull")
    daemon.call("models.delete", {"model": "qwen2.5:0.5b"})
    wait_until(lambda: installed() == 0, 10, "the listing made after the delete")
    wait_until(lambda: len(daemon.requests("/api/tags")) >= 3, 5, "the request log")
    assert len(daemon.requests("/api/tags")) == 3  # one each; nobody called models.list
