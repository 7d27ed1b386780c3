"""A squatted runtime dir or a socket served by another user is refused by every client.

When ``XDG_RUNTIME_DIR`` is unset the runtime dir is ``/tmp/n3-$UID``, a name
anyone can create first. The daemon refuses such a directory; its clients must
too, or the squatter answers `status`, reads every request and injects text.
The runtime dir here is ``$XDG_RUNTIME_DIR/n3`` of a temporary directory (the
same check; the real ``/tmp/n3-0`` belongs to whoever else runs as root here).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from n3d.client import Connection, DaemonUnreachable, UntrustedSocket
from n3d.client.aio import connect
from n3d.editor_tools import OllamaEditorTools

from .conftest import clean_env, default_handlers, run_ctl
from .fake_daemon import FakeDaemon
from .squatter import NOBODY, Squatter, lend

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="playing another user needs root")


@pytest.fixture
def base(short_dir: Path) -> Path:
    """A short directory others may traverse (so uid 65534 can reach what it is lent)."""
    short_dir.chmod(0o711)
    return short_dir


@pytest.fixture
def squatted_runtime_dir(base: Path) -> Iterator[tuple[Path, Squatter]]:
    """``base/n3`` made and owned by uid 65534, who serves ``n3d.sock`` in it."""
    runtime = base / "n3"
    runtime.mkdir()
    lend(runtime)
    squatter = Squatter(runtime / "n3d.sock")
    try:
        yield runtime, squatter
    finally:
        squatter.stop()


@pytest.fixture
def foreign_socket(base: Path) -> Iterator[tuple[Path, Squatter]]:
    """A socket served by uid 65534 in a directory that is not the runtime dir."""
    elsewhere = base / "x"
    elsewhere.mkdir()
    lend(elsewhere)
    squatter = Squatter(elsewhere / "s.sock")
    try:
        yield elsewhere / "s.sock", squatter
    finally:
        squatter.stop()


def test_n3ctl_refuses_a_runtime_dir_owned_by_another_user(
    base: Path, squatted_runtime_dir: tuple[Path, Squatter]
) -> None:
    runtime, squatter = squatted_runtime_dir
    result = run_ctl("status", env=clean_env(XDG_RUNTIME_DIR=str(base)))
    assert result.code == 69, result
    assert result.out == ""
    assert result.err.startswith(f"n3ctl: refusing the socket at {runtime}/n3d.sock: ")
    assert f"is owned by uid {NOBODY}, not by you" in result.err
    assert squatter.stop() == []  # refused before connecting: the squatter saw nothing


def test_n3ctl_refuses_a_socket_served_by_another_user(
    foreign_socket: tuple[Path, Squatter],
) -> None:
    path, squatter = foreign_socket
    for argv in (["status"], ["--json", "status"], ["pull", "llama3"], ["version"]):
        result = run_ctl(*argv, "--socket", str(path))
        assert "squatter" not in result.out, (argv, result)
        if argv != ["version"]:  # version reports an unreachable daemon and exits 0
            assert result.code == 69, (argv, result)
            assert f"it is served by uid {NOBODY} (pid " in result.err, result.err
    # Four connections, and not one byte of any request reached the squatter.
    assert squatter.stop(expect=8) == ["accept", "recv 0"] * 4


def test_python_clients_refuse_a_squatted_runtime_dir(
    base: Path, squatted_runtime_dir: tuple[Path, Squatter], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, squatter = squatted_runtime_dir
    monkeypatch.delenv("N3D_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    with pytest.raises(UntrustedSocket, match=f"owned by uid {NOBODY}") as caught:
        Connection(timeout=5)
    assert caught.value.reason == "untrusted" and isinstance(caught.value, DaemonUnreachable)

    async def connect_async() -> None:
        async with connect(timeout_s=5):
            pass

    with pytest.raises(UntrustedSocket, match=f"owned by uid {NOBODY}"):
        anyio.run(connect_async)
    assert squatter.stop() == []


def test_python_clients_refuse_a_socket_served_by_another_user(
    foreign_socket: tuple[Path, Squatter], base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, squatter = foreign_socket
    with pytest.raises(UntrustedSocket, match=f"served by uid {NOBODY}"):
        Connection(path, timeout=5)

    async def connect_async() -> None:
        async with connect(path, timeout_s=5) as conn:
            await conn.call("status")

    with pytest.raises(UntrustedSocket, match=f"served by uid {NOBODY}"):
        anyio.run(connect_async)

    # The editor tools ask the daemon first: never the squatter's answer.
    monkeypatch.setenv("HOME", str(base))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "cfg"))
    monkeypatch.delenv("N3D_CONFIG", raising=False)
    assert OllamaEditorTools(path).get_default_model() == "llama3:8b"
    assert squatter.stop(expect=6) == ["accept", "recv 0"] * 3


@pytest.mark.parametrize("unsafe", ["symlink", "group-writable", "world-writable"])
def test_an_unsafe_runtime_dir_is_refused_even_when_the_server_is_ours(
    base: Path, unsafe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    real = base / "real"
    real.mkdir(mode=0o700)
    runtime = base / "n3"
    if unsafe == "symlink":
        runtime.symlink_to(real)
        served = real
    else:
        runtime.mkdir()
        runtime.chmod(0o770 if unsafe == "group-writable" else 0o777)
        served = runtime
    fake = FakeDaemon(served / "n3d.sock", default_handlers())
    try:
        result = run_ctl("status", env=clean_env(XDG_RUNTIME_DIR=str(base)))
        with pytest.raises(UntrustedSocket):
            Connection(runtime / "n3d.sock", timeout=5)
    finally:
        fake.close()
    assert result.code == 69, result
    expected = "is a symlink" if unsafe == "symlink" else "it must be private (0700)"
    assert expected in result.err
    assert fake.calls == []


def test_our_own_private_runtime_dir_is_used(base: Path) -> None:
    runtime = base / "n3"
    runtime.mkdir(mode=0o700)
    fake = FakeDaemon(runtime / "n3d.sock", default_handlers())
    try:
        result = run_ctl("status", env=clean_env(XDG_RUNTIME_DIR=str(base)))
    finally:
        fake.close()
    assert result.code == 0, result
    assert fake.calls == [("status", {})]
