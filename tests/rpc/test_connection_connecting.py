"""A connection ended before its transport exists: uvloop's way, checked on asyncio.

uvloop's ``connect_accepted_socket`` closes a transport whose ``await`` is cancelled
without ever calling ``connection_made`` (asyncio calls it first, either way). A
connection aborted in that moment (n3d's shutdown, an eviction) must still close its
socket and end quietly: serving never raises but cancellation.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import anyio
import pytest

from n3d.rpc.bounds import Limits
from n3d.rpc.connection import Connection, State
from n3d.rpc.dispatch import MethodTable


async def test_a_connection_aborted_before_its_transport_exists_closes_its_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    waiting = anyio.Event()

    async def never_made(factory: Any, sock: socket.socket) -> Any:
        factory()
        waiting.set()
        await anyio.sleep_forever()  # cancelled: no connection_made, as uvloop does

    monkeypatch.setattr(loop, "connect_accepted_socket", never_made)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    conn = Connection(
        1,
        ours,
        MethodTable(),
        Limits(),
        on_subscribe=lambda *_: None,
        on_unsubscribe=lambda _: None,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.serve)
        await waiting.wait()
        conn.abort()
    assert conn.state is State.CLOSED
    assert ours.fileno() == -1  # closed by serve, though no transport ever owned it
    theirs.close()
