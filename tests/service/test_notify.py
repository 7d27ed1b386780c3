"""sd_notify: one datagram per message, to a path or an abstract socket."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from n3d.service.notify import Notifier


@pytest.fixture
def receiver(short_dir: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(short_dir / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_ready_status_stopping_are_single_datagrams(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = Notifier(path)
    assert notifier.ready("ollama running\n(pid 1)")
    assert sock.recv(4096) == b"READY=1\nSTATUS=ollama running (pid 1)"
    notifier.status("ollama backoff")
    assert sock.recv(4096) == b"STATUS=ollama backoff"
    notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.reloading()
    lines = sock.recv(4096).decode().splitlines()
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert int(lines[1].split("=")[1]) > 0


def test_abstract_sockets_are_supported() -> None:
    name = f"n3d-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier("@" + name).watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled and not notifier.ready() and notifier.watchdog_interval_s is None
    assert not Notifier("/nonexistent/dir/notify").ready()  # errors are ignored


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_us() -> None:
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_env(env).watchdog_interval_s == 15.0
    mine = Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval_s == 15.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": "1"}).watchdog_interval_s is None


async def test_the_watchdog_pings_from_the_event_loop(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    notifier = Notifier(path, watchdog_usec=40_000)  # a ping every 20 ms
    async with anyio.create_task_group() as tg:
        await tg.start(notifier.run_watchdog)
        got = [await anyio.to_thread.run_sync(sock.recv, 4096) for _ in range(3)]
        tg.cancel_scope.cancel()
    assert got == [b"WATCHDOG=1"] * 3
