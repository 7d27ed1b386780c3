"""When n3d cannot be reached, every command exits 69 with a one-line hint naming the socket."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from n3d.ctl import main

from .conftest import clean_env, run_ctl
from .fake_daemon import FakeDaemon, Session

HOT = [
    ["status"],
    ["health"],
    ["models"],
    ["--json", "status"],
    ["pull", "x"],
    ["warm", "add", "x"],
    ["events"],
    ["metrics", "--prometheus"],
    ["stop"],
]


@pytest.mark.parametrize("argv", HOT, ids=" ".join)
def test_no_socket_says_how_to_start_n3d(argv: list[str], short_dir: Path) -> None:
    path = short_dir / "n3d.sock"
    result = run_ctl(*argv, env=clean_env(N3D_SOCKET=str(path)))
    assert result.code == 69
    assert result.out == ""
    assert result.err == (
        f"n3ctl: no n3d socket at {path}; is n3d running? start it with: n3d run\n"
    )


def test_default_socket_is_under_the_runtime_dir(short_dir: Path) -> None:
    env = clean_env(XDG_RUNTIME_DIR=str(short_dir))
    result = run_ctl("status", env=env)
    assert result.code == 69
    assert f"no n3d socket at {short_dir}/n3/n3d.sock;" in result.err


def test_a_stale_socket_is_named_as_such(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening, then closed: the file stays
    assert path.exists()
    result = run_ctl("status", env=clean_env(N3D_SOCKET=str(path)))
    assert result.code == 69
    assert result.err == (
        f"n3ctl: stale socket at {path} (connection refused): n3d is not running; "
        "start it with: n3d run\n"
    )


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root ignores file permissions; "
    "see test_permission_denied_hint for the same path without them",
)
def test_a_socket_we_may_not_open(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    daemon = FakeDaemon(path, {})
    try:
        short_dir.chmod(0o000)
        result = run_ctl("status", env=clean_env(N3D_SOCKET=str(path)))
    finally:
        short_dir.chmod(0o700)
        daemon.close()
    assert result.code == 69
    assert result.err.startswith(f"n3ctl: permission denied on {path}:")


def test_permission_denied_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same chain in-process, for root too: EACCES from connect → 69 and the hint."""

    def refuse(self: socket.socket, address: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert main(["--socket", "/run/other/n3d.sock", "status"]) == 69
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "n3ctl: permission denied on /run/other/n3d.sock: it belongs to another user; "
        "choose yours with --socket or N3D_SOCKET\n"
    )


def test_a_daemon_that_does_not_answer_times_out(short_dir: Path) -> None:
    release = threading.Event()

    def never(params: dict[str, Any], session: Session) -> Any:
        release.wait(60)  # far longer than any bound below: only the timeout ends the wait

    daemon = FakeDaemon(short_dir / "s.sock", {"status": never})
    try:
        started = time.monotonic()
        result = run_ctl("--timeout", "0.3", "status", env=clean_env(N3D_SOCKET=str(daemon.path)))
        took = time.monotonic() - started
    finally:
        release.set()
        daemon.close()
    assert result.code == 69
    assert "did not answer in time" in result.err and "try --timeout" in result.err
    # n3ctl's own start-up is most of this on a loaded machine; the answer never came.
    assert took < 15


def test_version_works_without_a_daemon(short_dir: Path) -> None:
    result = run_ctl("version", env=clean_env(N3D_SOCKET=str(short_dir / "s.sock")))
    assert (result.code, result.out) == (0, "n3ctl 0.1.0\n")
    assert "not reachable" in result.err
    result = run_ctl("--json", "version", env=clean_env(N3D_SOCKET=str(short_dir / "s.sock")))
    assert result.out == '{\n  "n3ctl": {\n    "version": "0.1.0"\n  },\n  "n3d": null\n}\n'
