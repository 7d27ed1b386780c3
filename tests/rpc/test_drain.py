"""Shutdown drains the socket (STYLE #3): stop accepting, let calls in flight answer, then cancel.

:meth:`RpcServer.drain` is what the daemon awaits under its 2 s deadline before it
cancels the server; here the deadline is the test's, so nothing depends on timing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal

from n3d.rpc import RpcServer

from .support import Raw, Record, Running, make_table


def _req(method: str, params: Any, request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}


async def _drain_within(server: RpcServer, deadline_s: float) -> None:
    with anyio.move_on_after(deadline_s):
        await server.drain()


def test_a_call_in_flight_at_shutdown_gets_its_answer_then_the_connection_closes(
    raw: Callable[..., Raw], running: Running
) -> None:
    busy, idle = raw(), raw()
    assert idle.call(_req("get_data", None, 1))["id"] == 1
    busy.send(_req("sleep", {"seconds": 0.3, "tag": "late"}, "in-flight"))
    running.record.wait_started("late")
    running.portal.call(_drain_within, running.server, 30.0)  # returns once every connection closed
    assert busy.recv() == {"jsonrpc": "2.0", "result": {"slept": 0.3}, "id": "in-flight"}
    busy.expect_closed()
    idle.expect_closed()  # nothing in flight: closed at once
    assert running.record.cancelled == []
    with (
        pytest.raises((FileNotFoundError, ConnectionRefusedError)),
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as late,
    ):
        late.connect(str(running.path))  # the socket stopped accepting and is gone


def test_a_call_that_never_finishes_is_cancelled_at_the_deadline(short_dir: Path) -> None:
    record = Record()
    server = RpcServer(short_dir / "n3d.sock", make_table(record))
    with start_blocking_portal("asyncio") as portal:
        serving, _ = portal.start_task(server.run)
        stuck = Raw(server.path)
        try:
            stuck.send(_req("sleep", {"seconds": 3600, "tag": "forever"}, 1))
            record.wait_started("forever")
            portal.call(_drain_within, server, 0.2)  # the deadline passes: drain gave up
            assert server.connection_count == 1
            serving.cancel()  # what the daemon does next: cancel run()
            deadline = time.monotonic() + 30
            while not record.cancelled:
                assert time.monotonic() < deadline, "the call was never cancelled"
                time.sleep(0.01)
            assert record.cancelled == ["forever"]
            stuck.expect_closed()  # no answer: the call was cancelled with its connection
        finally:
            stuck.close()
