"""The race that decides which of anyio's socket APIs the server may use.

A read is cancelled in the same event-loop pass as its data arrives: the
cancellation runs first (a callback already queued), then the loop's reader
callback for the socket. The daemon meets this at every timeout, hang-up and
shutdown. anyio#1267 fixed the ``aclose`` half of it; in anyio 4.16 a
``UNIXSocketStream`` read still wakes its future from that callback after the
future was cancelled, and the loop reports ``InvalidStateError``. The server
therefore uses ``anyio.wait_readable`` (guarded) to accept and an asyncio
protocol per connection (no future per read); the first test below is a canary
that starts passing, and fails as strict, once anyio fixes its streams.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest

from n3d.rpc.bounds import Limits
from n3d.rpc.connection import Connection

from .support import make_table

pytestmark = pytest.mark.anyio

REQUEST = b'{"jsonrpc":"2.0","method":"get_data","id":%d}\n'


async def _cancel_as_data_arrives(
    read: Callable[[], Awaitable[bytes]], peer: socket.socket
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Park ``read`` in a task, then send on ``peer`` and cancel the read in one loop pass.

    Returns what the loop's exception handler saw, and what the read returned.
    """
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    got: list[bytes] = []
    try:
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def reader() -> None:
                with scope:
                    got.append(await read())

            tg.start_soon(reader)
            await anyio.sleep(0.05)  # parked on the socket
            peer.send(b"data")  # readable at the next poll...
            loop.call_soon(scope.cancel)  # ...and cancelled earlier in that same pass
            await anyio.sleep(0.05)
    finally:
        loop.set_exception_handler(previous)
    return errors, got


# Not strict: a newer anyio from the index must not fail CI; an XPASS in the report is
# the signal to revisit rpc/connection.py's choice.
@pytest.mark.xfail(
    strict=False,
    reason="anyio 4.16: UNIXSocketStream sets its read future from a loop callback even "
    "after the read was cancelled (InvalidStateError); when this passes, anyio's UNIX "
    "streams and listener are safe for the server",
)
async def test_anyio_unix_streams_survive_a_read_cancelled_as_data_arrives() -> None:
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with peer:
        stream = await anyio.abc.UNIXSocketStream.from_socket(ours)
        async with stream:
            errors, _ = await _cancel_as_data_arrives(stream.receive, peer)
    assert errors == []


async def test_wait_readable_survives_a_wait_cancelled_as_data_arrives() -> None:
    # What the server's accept loop waits on.
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, peer:

        async def read() -> bytes:
            await anyio.wait_readable(ours)
            return ours.recv(100)

        errors, got = await _cancel_as_data_arrives(read, peer)
        assert errors == [] and got == []
        assert ours.recv(100) == b"data"  # the bytes wait in the kernel: nothing lost


async def test_a_connection_drained_as_a_request_arrives_closes_cleanly() -> None:
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setblocking(False)
    conn = Connection(1, ours, make_table(), Limits(), lambda *_: None, lambda *_: None)
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    received = b""
    try:
        with peer, anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(conn.serve)
                peer.setblocking(False)
                peer.send(REQUEST % 1)
                while b"\n" not in received:  # served once: now parked, reading
                    await anyio.wait_readable(peer)
                    received += peer.recv(4096)
                peer.send(REQUEST % 2)  # readable at the next poll...
                loop.call_soon(conn.drain)  # ...and reading ends earlier in that same pass
                while chunk := await _recv(peer):
                    received += chunk
    finally:
        loop.set_exception_handler(previous)
    assert errors == []
    assert received.startswith(b'{"jsonrpc":"2.0","result":["hello",5],"id":1}\n')


async def _recv(sock: socket.socket) -> bytes:
    await anyio.wait_readable(sock)
    try:
        return sock.recv(4096)
    except ConnectionResetError:
        return b""
