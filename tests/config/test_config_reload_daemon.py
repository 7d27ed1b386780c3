"""A reload through a real `n3d run`: [log] and [socket] limits apply live, the rest is named.

What `config.get` shows after a reload is what runs; keys that wait for a restart of
n3d are listed in `pending_restart`.
"""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from n3d.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(short_dir: Path) -> Iterator[DaemonProcess]:
    home = short_dir
    d = DaemonProcess(home, default_socket=True)  # no N3D_SOCKET: [socket].path counts
    try:
        yield d.start().wait_ready()
    finally:
        d.cleanup()


def raw_call(path: Path, size: int) -> dict[str, Any]:
    """A `status` call padded to about ``size`` bytes, on a fresh connection."""
    pad = "x" * max(0, size - 80)
    line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status", "params": {"pad": pad}})
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(line.encode() + b"\n")
        reply: dict[str, Any] = json.loads(sock.makefile("rb").readline())
    return reply


def reloaded(daemon: DaemonProcess, count: int) -> bool:
    return len(daemon.events("config.reloaded")) >= count


def test_sighup_applies_the_log_level_and_socket_limits_live(daemon: DaemonProcess) -> None:
    daemon.call("status")
    assert not [e for e in daemon.events() if e["level"] == "debug"]
    assert raw_call(daemon.socket, 4000)["error"]["code"] == -32602  # fits: only 'pad' is wrong

    daemon.write_config({"log": {"level": "debug"}, "socket": {"max_message_bytes": 2048}})
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: reloaded(daemon, 1), 20, "the reload")

    daemon.call("status")
    wait_until(lambda: daemon.events("rpc.connected"), 10, "a debug event")  # debug is on
    config = daemon.call("config.get")
    assert config["values"]["log"]["level"] == "debug"
    assert config["values"]["socket"]["max_message_bytes"] == 2048
    assert config["pending_restart"] == []
    refused = raw_call(daemon.socket, 4000)["error"]  # a new connection: the new limit
    assert refused["code"] == -32700 and "max_message_bytes (2048)" in refused["message"]
    assert raw_call(daemon.socket, 1000)["error"]["code"] == -32602  # small ones still fit
    changed = daemon.events("config.reloaded")[0]["changed"]
    assert set(changed) == {"log.level", "socket.max_message_bytes"}


def test_config_get_names_the_keys_waiting_for_a_restart_of_n3d(daemon: DaemonProcess) -> None:
    socket_path = str(daemon.socket)
    elsewhere = str(daemon.home / "other.sock")
    daemon.write_config({"socket": {"path": elsewhere, "max_connections": 9}})
    answer = daemon.call("config.reload")
    assert answer["reloaded"] is True
    assert answer["pending_restart"] == ["socket.path"]
    assert answer["values"]["socket"]["path"] == ""  # what runs: the default socket
    assert answer["values"]["socket"]["max_connections"] == 9  # applied
    assert daemon.call("config.get")["pending_restart"] == ["socket.path"]
    assert daemon.events("config.reload_needs_restart")[-1]["keys"] == ["socket.path"]
    assert str(daemon.socket) == socket_path and not Path(elsewhere).exists()

    daemon.write_config({})  # back as it runs: nothing waits any more
    assert daemon.call("config.reload")["pending_restart"] == []
