"""The clients: synchronous (stdlib only, for n3ctl) and async (anyio, for editors and tools)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from n3d import client as client_module
from n3d.client import (
    ClosedByDaemon,
    Connection,
    ConnectionLost,
    DaemonNotRunning,
    DaemonTimeout,
    DaemonUnreachable,
    RpcError,
    SocketPermissionDenied,
    StaleSocket,
)
from n3d.client.aio import connect
from n3d.rpc import RpcServer

from .support import Record, Running, make_table


def test_sync_client_calls_and_maps_errors(running: Running) -> None:
    with Connection(running.path, timeout=5) as conn:
        assert conn.call("subtract", [42, 23]) == 19
        assert conn.call("echo", {"value": "é\n"}) == {"value": "é\n"}
        with pytest.raises(RpcError) as caught:
            conn.call("fail", {"kind": "ollama"})
        assert caught.value.code == 1002 and caught.value.data["kind"] == "model_not_found"
        assert caught.value.suggestion is not None and "ollama pull" in caught.value.suggestion
        with pytest.raises(RpcError, match="Method not found"):
            conn.call("nope")


def test_sync_client_progress_and_notifications(running: Running) -> None:
    seen: list[dict[str, Any]] = []
    with Connection(running.path, timeout=5) as conn:
        assert conn.call("progress", {"steps": 2}, progress=seen.append) == {"steps": 2}
        assert [v["kind"] for v in seen] == ["begin", "report", "report", "end"]
        conn.call("events.subscribe", {"topics": ["pull"]})
        running.broadcast("pull", {"model": "llama3", "completed": 1})
        assert next(iter(conn.notifications())) == (
            "event",
            {"topic": "pull", "model": "llama3", "completed": 1},
        )


def test_stdlib_only_at_import_time() -> None:
    code = (
        "import sys, n3d.client; "
        "bad = {'anyio', 'httpx', 'structlog', 'psutil'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_unreachable_reasons(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = short_dir / "missing.sock"
    with pytest.raises(DaemonNotRunning, match="n3d run") as caught:
        Connection(missing)
    assert caught.value.reason == "missing" and isinstance(caught.value, DaemonUnreachable)

    stale = short_dir / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()
    with pytest.raises(StaleSocket):
        Connection(stale)

    mute = short_dir / "mute.sock"  # listens (backlog accepts) but never answers
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(mute))
        listener.listen()
        conn = Connection(mute, timeout=0.2)
        with pytest.raises(DaemonTimeout, match="no reply within 0.2 s"):
            conn.call("status")
        conn.close()

    def denied(self: socket.socket, address: Any) -> None:
        raise PermissionError(13, "Permission denied")

    # As root, file modes never deny; simulate what a non-owner sees.
    monkeypatch.setattr(client_module.socket.socket, "connect", denied)
    with pytest.raises(SocketPermissionDenied):
        Connection(mute)


def test_connection_lost_when_the_server_hangs_up(start_server: Any) -> None:
    impostor = {"uid": 4321}
    running = start_server(peer_credentials=lambda sock: (impostor["uid"], None))
    conn = Connection(running.path, timeout=5)
    with pytest.raises(ConnectionLost):
        conn.call("status")
    conn.close()


def test_an_evicted_connection_says_why_at_its_next_call(start_server: Any) -> None:
    """At max_connections the idle one makes room: -32000 with id null, then close."""
    running = start_server(max_connections=1, evict_idle_after_s=0.0)
    with Connection(running.path, timeout=5) as idle:
        assert idle.call("echo", {"value": 1}) == {"value": 1}
        with Connection(running.path, timeout=5) as newcomer:
            assert newcomer.call("echo", {"value": 2}) == {"value": 2}  # room was made
        with pytest.raises(ClosedByDaemon, match="Server busy: 1 connections open") as caught:
            idle.call("echo", {"value": 3})
        assert caught.value.code == -32000 and isinstance(caught.value, ConnectionLost)
        with pytest.raises(ClosedByDaemon):  # and so does every later call
            idle.call("echo", {"value": 4})


def test_a_closing_word_is_read_even_when_sending_fails(short_dir: Path) -> None:
    """The daemon is gone entirely (sending fails): what it said before still arrives."""
    path = short_dir / "gone.sock"
    gone = threading.Event()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()

    def say_why_and_close() -> None:
        peer, _ = listener.accept()
        peer.sendall(
            b'{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server busy: go"},"id":null}\n'
        )
        peer.close()
        gone.set()

    thread = threading.Thread(target=say_why_and_close)
    thread.start()
    try:
        with Connection(path, timeout=5) as conn:
            assert gone.wait(5)
            with pytest.raises(ClosedByDaemon, match="Server busy: go"):
                conn.call("status")
    finally:
        thread.join(5)
        listener.close()


def test_default_path_comes_from_n3d_socket(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("N3D_SOCKET", str(running.path))
    with Connection() as conn:
        assert conn.call("get_data") == ["hello", 5]


async def test_async_client_concurrent_calls_progress_events_and_cancel(short_dir: Path) -> None:
    record = Record()
    path = short_dir / "n3d.sock"
    async with anyio.create_task_group() as tg:
        server: RpcServer = await tg.start(RpcServer(path, make_table(record)).run)
        async with connect(path) as conn:
            results: dict[int, Any] = {}

            async def one(i: int) -> None:
                results[i] = await conn.call("echo", {"value": i})

            async with anyio.create_task_group() as calls:
                for i in range(20):
                    calls.start_soon(one, i)
            assert results == {i: {"value": i} for i in range(20)}

            seen: list[str] = []
            await conn.call("progress", {"steps": 1}, progress=lambda v: seen.append(v["kind"]))
            assert seen == ["begin", "report", "end"]

            await conn.call("events.subscribe", {"topics": ["warm"]})
            server.broadcast("warm", {"model": "llama3"})
            async for method, params in conn.notifications():
                assert (method, params) == ("event", {"topic": "warm", "model": "llama3"})
                break

            with anyio.move_on_after(0.1):
                await conn.call("sleep", {"seconds": 30, "tag": "editor"})
            # Frames are read in order: once this answers, the $/cancelRequest was handled.
            assert await conn.call("echo", {"value": 0}) == {"value": 0}
            await anyio.wait_all_tasks_blocked()
            assert record.cancelled == ["editor"]

            with pytest.raises(RpcError) as caught:
                await conn.call("fail", {"kind": "method"})
            assert caught.value.code == -32001
        tg.cancel_scope.cancel()


async def test_async_client_evicted_says_why(short_dir: Path) -> None:
    path = short_dir / "n3d.sock"
    server = RpcServer(path, make_table(Record()), max_connections=1, evict_idle_after_s=0.0)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        async with connect(path) as idle:
            assert await idle.call("echo", {"value": 1}) == {"value": 1}
            async with connect(path) as newcomer:
                assert await newcomer.call("echo", {"value": 2}) == {"value": 2}
                # Evicted before the newcomer was served: nothing more reaches a handler.
                with anyio.fail_after(5), pytest.raises(ClosedByDaemon, match="Server busy"):
                    await idle.call("echo", {"value": 3})
        tg.cancel_scope.cancel()


async def test_async_client_unreachable(short_dir: Path) -> None:
    with pytest.raises(DaemonNotRunning):
        async with connect(short_dir / "none.sock"):
            pass
