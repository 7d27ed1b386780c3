"""A real `n3d run` whose state dir cannot be written: warm changes are refused, not lost.

The state dir sits under a regular file (``XDG_STATE_HOME`` names a file), so it can
never be created. Unlike a mode-0500 directory this holds when the tests run as
root, which ignores permission bits; the failure reaches the same place (the one
atomic writer) as a read-only or full disk would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from n3d.client import RpcError
from n3d.testing import DaemonProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(short_dir: Path) -> Iterator[DaemonProcess]:
    home = short_dir
    blocker = home / "state-is-a-file"
    blocker.write_text("")
    d = DaemonProcess(
        home,
        config={"warm": {"models": ["tinyllama"]}},
        XDG_STATE_HOME=str(blocker),
        OLLAMA_SIM_MODELS_PRELOAD="tinyllama",
    )
    try:
        yield d.start().wait_ready()
    finally:
        d.cleanup()


def test_warm_changes_with_an_unwritable_state_dir_are_refused_naming_the_path(
    daemon: DaemonProcess,
) -> None:
    path = str(daemon.home / "state-is-a-file" / "n3" / "warm.json")
    calls = (
        ("warm.add", {"model": "qwen2.5:0.5b", "keep_alive": "30m"}),
        ("warm.remove", {"model": "tinyllama"}),
        ("models.delete", {"model": "tinyllama"}),  # warm: it would leave the list first
    )
    for method, params in calls:
        with pytest.raises(RpcError) as info:
            daemon.call(method, params)
        error = info.value
        assert (error.code, error.data["kind"]) == (1013, "state_not_saved"), method
        assert path in error.message and error.data["path"] == path
    warm = daemon.call("warm.list")["models"]
    assert [(m["name"], m["source"]) for m in warm] == [("tinyllama:latest", "config")]
    installed = [m["name"] for m in daemon.call("models.list", {"refresh": True})["models"]]
    assert "tinyllama:latest" in installed  # not deleted
    assert daemon.call("status")["server"]["state"] == "running"
    assert not daemon.events("rpc.internal_error")
