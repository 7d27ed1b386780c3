"""The daemon as a whole: socket lifecycle, JSON logs for shipping, Type=notify readiness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest

from n3d.client import Connection, RpcError

from .conftest import Daemon, wait_until

pytestmark = pytest.mark.slow


def test_sigterm_removes_the_socket_and_exits_zero(daemon: Daemon) -> None:
    assert daemon.socket.exists()
    assert daemon.stop() == 0
    assert not daemon.socket.exists()


def test_a_second_daemon_on_the_same_socket_refuses(
    daemon: Daemon, daemon_factory: Callable[..., Daemon]
) -> None:
    other = daemon_factory("other")
    other.env["N3D_SOCKET"] = str(daemon.socket)
    other.start()
    assert other.proc is not None
    assert other.proc.wait(30) == 1
    assert f"another n3d is listening on {daemon.socket}" in other.stderr()
    assert other.events("n3d.already_running")
    assert daemon.call("status")["server"]["state"] == "running"


def test_a_stale_socket_is_replaced(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(d.socket))
    stale.close()  # a socket file nobody listens on, as a killed daemon leaves
    d.start()
    d.wait_socket()


def test_every_log_line_is_json_with_the_four_fields(daemon: Daemon) -> None:
    daemon.call("models.pull", {"model": "qwen2.5:0.5b"}, timeout=30)
    pid = daemon.call("status")["server"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: daemon.call("status")["server"]["restarts"] == 1, 20, "a restart")
    daemon.wait_state("running")
    assert daemon.stop() == 0
    lines = daemon.log.read_text().splitlines()
    assert len(lines) > 20
    metrics = set()
    for line in lines:
        entry = json.loads(line)
        assert {"timestamp", "level", "logger", "event"} <= set(entry), line
        assert entry["timestamp"].endswith("Z")
        if entry["event"] == "metric":
            metrics.add(entry["metric"])
    assert {
        "ollama.server.started",
        "ollama.server.stopped",
        "ollama.server.restarts",
        "ollama.health.check_duration",
        "ollama.model.pull_duration",
    } <= metrics
    assert any(json.loads(line)["logger"] == "ollama" for line in lines)


def test_ready_is_sent_only_once_the_socket_accepts(
    daemon_factory: Callable[..., Daemon],
) -> None:
    d = daemon_factory()
    notify_path = d.home / "notify"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(notify_path))
    receiver.settimeout(20)
    d.env["NOTIFY_SOCKET"] = str(notify_path)
    d.start()
    try:
        while True:
            message = receiver.recv(4096).decode()
            if "READY=1" in message:
                break
        # At the moment READY=1 arrives, a client can already be served.
        with Connection(d.socket, timeout=5) as conn:
            assert conn.call("models.default") == {"model": "llama3:8b"}
    finally:
        receiver.close()


def test_n3d_run_answers_python_dash_m_and_the_console_script_alike() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "n3d", "run", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and "--simulate" in result.stdout


def test_a_warm_model_is_loaded_again_after_the_supervisor_restarts_serve(
    daemon_factory: Callable[..., Daemon],
) -> None:
    d = daemon_factory()
    d.env["OLLAMA_SIM_MODELS_PRELOAD"] = "qwen2.5:0.5b"
    d.config_path.write_text(d.config_path.read_text() + '\n[warm]\nmodels = ["qwen2.5:0.5b"]\n')
    d.start()
    d.wait_socket()

    def warm_loaded() -> bool:
        rows = d.call("warm.list")["models"]
        return bool(rows) and rows[0]["loaded"]

    wait_until(warm_loaded, 20, "the warm model to load after start")
    first = d.call("status")["server"]["pid"]
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: d.call("status")["server"]["restarts"] == 1, 20, "a restart")

    def loaded_in_new_server() -> bool:
        try:
            loaded = d.call("models.loaded")["models"]
        except RpcError:  # the server is between lives
            return False
        return any(m["name"] == "qwen2.5:0.5b" for m in loaded)

    # No client asks for the model: n3d loads it into the new server by itself.
    wait_until(loaded_in_new_server, 20, "the warm model to load into the restarted server")
    assert d.call("status")["server"]["pid"] != first
    warm_durations = d.call("metrics")["histograms"]["ollama.model.warm_duration"]
    assert warm_durations["count"] >= 2  # once after start, once after the restart


def test_a_file_in_the_socket_path_stops_n3d_before_any_server_starts(
    daemon_factory: Callable[..., Daemon],
) -> None:
    d = daemon_factory()
    d.socket.write_text("not a socket")
    d.start()
    assert d.proc is not None and d.proc.wait(30) == 1
    assert d.socket.read_text() == "not a socket"  # never removed
    assert d.events("ollama.spawned") == [] and d.events("server.state") == []
    assert "not a socket" in d.stderr()
