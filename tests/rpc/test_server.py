"""A server on a real Unix socket: the specification's examples, socket hygiene, activation."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from n3d.errors import AlreadyRunning, PathError
from n3d.rpc import RpcServer
from n3d.rpc import listener as listener_module

from .spec_examples import EXAMPLES, IDS, canonical, one_line
from .support import Raw, Running, make_table

SENTINEL = {"jsonrpc": "2.0", "method": "echo", "params": {"value": "sentinel"}, "id": "sentinel"}


def _send_example(client: Raw, text: str) -> None:
    client.send(one_line(text) if client.framing == "ndjson" else text.encode())


def _exchange(client: Raw, text: str, expected: Any) -> None:
    """Send an example, then a sentinel; requests run concurrently, so match replies by id."""
    _send_example(client, text)
    client.send(SENTINEL)
    replies = [client.recv() for _ in range(1 if expected is None else 2)]
    sentinel = [r for r in replies if isinstance(r, dict) and r.get("id") == "sentinel"]
    others = [r for r in replies if r not in sentinel]
    assert len(sentinel) == 1
    assert [canonical(r) for r in others] == ([] if expected is None else [canonical(expected)])


def _assert_nothing_more(client: Raw) -> None:
    client.sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        client.recv()


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_spec_examples_over_the_socket(
    raw: Callable[..., Raw], running: Running, framing: str
) -> None:
    client = raw(framing)
    for _name, text, expected in EXAMPLES:
        _exchange(client, text, expected)
    _assert_nothing_more(client)
    assert {"update", "notify_hello", "notify_sum"} <= set(running.record.notified)


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
@pytest.mark.parametrize(("name", "text", "expected"), EXAMPLES, ids=IDS)
def test_each_spec_example_on_a_fresh_connection(
    raw: Callable[..., Raw], framing: str, name: str, text: str, expected: Any
) -> None:
    client = raw(framing)
    _exchange(client, text, expected)
    if expected is None:
        _assert_nothing_more(client)


def test_socket_is_0600_from_the_start(running: Running) -> None:
    assert stat.S_IMODE(os.lstat(running.path).st_mode) == 0o600
    assert stat.S_ISSOCK(os.lstat(running.path).st_mode)


def test_socket_is_removed_on_exit(short_dir: Path) -> None:
    path = short_dir / "n3d.sock"

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(RpcServer(path, make_table()).run)
            assert path.exists()
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert not path.exists()


def test_stale_socket_is_replaced(short_dir: Path, start_server: Callable[..., Running]) -> None:
    path = short_dir / "n3d.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # bound, never listened: connect() is refused, like a crashed daemon's
    running = start_server(path=path)
    client = Raw(running.path)
    assert client.call(SENTINEL)["result"] == {"value": "sentinel"}
    client.close()


def test_second_server_refuses_to_start_on_a_live_socket(running: Running) -> None:
    with pytest.raises(AlreadyRunning, match=f"another n3d is listening on {running.path}"):
        anyio.run(RpcServer(running.path, make_table()).run)
    client = Raw(running.path)  # and the first one is untouched
    assert client.call(SENTINEL)["id"] == "sentinel"
    client.close()


def test_non_socket_file_at_the_path_is_not_removed(short_dir: Path) -> None:
    path = short_dir / "n3d.sock"
    path.write_text("precious")
    with pytest.raises(PathError, match="not a socket"):
        anyio.run(RpcServer(path, make_table()).run)
    assert path.read_text() == "precious"


def test_exit_does_not_remove_a_socket_that_is_no_longer_ours(short_dir: Path) -> None:
    path = short_dir / "n3d.sock"

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(RpcServer(path, make_table()).run)
            path.unlink()  # someone (a newer daemon) took the path over
            other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            other.bind(str(path))
            other.close()
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_socket_activation_uses_the_inherited_fd_and_never_unlinks_it(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = short_dir / "activated.sock"
    inherited = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    inherited.bind(str(path))
    inherited.listen()
    # systemd puts the socket at fd 3; in-process, point the constant at our fd instead
    # of clobbering whatever this test process has at fd 3.
    monkeypatch.setattr(listener_module, "SD_LISTEN_FDS_START", inherited.fileno())
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"}
    unused = short_dir / "unused.sock"
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            server = await tg.start(RpcServer(unused, make_table(), env=env).run)
            seen["activated"] = server.activated
            stream = await anyio.connect_unix(path)
            await stream.send(b'{"jsonrpc":"2.0","method":"get_data","id":1}\n')
            seen["reply"] = await stream.receive()
            await stream.aclose()
            tg.cancel_scope.cancel()

    anyio.run(main)
    inherited.detach()  # the server owned and closed the fd
    assert seen["activated"] is True
    assert seen["reply"] == b'{"jsonrpc":"2.0","result":["hello",5],"id":1}\n'
    assert path.exists() and not unused.exists()


def test_a_removed_socket_file_is_bound_again_and_open_connections_keep_working(
    short_dir: Path,
) -> None:
    path = short_dir / "n3d.sock"

    async def call(stream: anyio.abc.SocketStream, request_id: int) -> bytes:
        await stream.send(b'{"jsonrpc":"2.0","method":"get_data","id":%d}\n' % request_id)
        return await stream.receive()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            server = await tg.start(RpcServer(path, make_table()).run)
            early = await anyio.connect_unix(path)
            assert b'"id":1' in await call(early, 1)
            path.unlink()  # a /tmp cleaner
            assert server.socket_lost()
            server.rebind()
            assert not server.socket_lost()
            assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
            late = await anyio.connect_unix(path)
            assert b'"id":2' in await call(late, 2)
            assert b'"id":3' in await call(early, 3)  # the connection from before still works
            await early.aclose()
            await late.aclose()
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert not path.exists()  # the new socket is ours: removed on exit
