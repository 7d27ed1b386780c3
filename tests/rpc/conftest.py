"""Fixtures for the control-socket tests.

The server runs on an anyio event loop in a background thread (a blocking
portal), so tests talk to it with plain blocking sockets, exactly as n3ctl,
socat or an editor would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from n3d.rpc import RpcServer

from .support import Raw, Record, Running, make_table


@pytest.fixture
def start_server(short_dir: Path) -> Iterator[Callable[..., Running]]:
    """``start_server(**RpcServer options)`` → a server serving the test table on a thread."""
    with start_blocking_portal("asyncio") as portal:
        futures = []

        def start(**options: Any) -> Running:
            record = Record()
            path = Path(options.pop("path", short_dir / "n3d.sock"))
            server = RpcServer(path, make_table(record), **options)
            future, _ = portal.start_task(server.run)
            futures.append(future)
            return Running(server, path, portal, record)

        yield start
        for future in futures:
            future.cancel()


@pytest.fixture
def running(start_server: Callable[..., Running]) -> Running:
    return start_server()


@pytest.fixture
def dial() -> Iterator[Callable[..., Raw]]:
    """``dial(running, framing="ndjson", timeout=5.0)`` → a Raw client, closed at teardown."""
    clients: list[Raw] = []

    def open_raw(running: Running, framing: str = "ndjson", timeout: float = 5.0) -> Raw:
        client = Raw(running.path, framing, timeout)
        clients.append(client)
        return client

    yield open_raw
    for client in clients:
        client.close()


@pytest.fixture
def raw(running: Running, dial: Callable[..., Raw]) -> Callable[..., Raw]:
    """``raw(framing="ndjson", timeout=5.0)`` → a Raw client of the default server."""
    return lambda framing="ndjson", timeout=5.0: dial(running, framing, timeout)
