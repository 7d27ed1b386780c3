"""`n3d run` end to end: real n3d processes supervising real simulators."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio
import psutil
import pytest

from n3d.supervisor.orphans import PidRecord, write_pid_file
from n3d.supervisor.process import group_members

from .daemon_helpers import N3dProcess
from .helpers import RUNNER_ENV, SIM, free_port, load_model

pytestmark = pytest.mark.slow
MakeN3d = Callable[..., N3dProcess]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_sigterm_exits_zero_and_leaves_no_process_or_file(
    short_dir: Path, n3d: MakeN3d
) -> None:
    port = free_port()
    daemon = n3d(short_dir, port, **RUNNER_ENV).start()
    serve = await daemon.running()
    await anyio.to_thread.run_sync(load_model, port)
    group = [p.pid for p in group_members(serve)]
    assert len(group) == 2  # serve and a runner, in serve's own group
    assert os.getpgid(serve) == serve != os.getpgid(daemon.pid)
    assert (daemon.runtime / "n3d.pid").read_text().strip() == str(daemon.pid)
    assert (daemon.runtime / "ollama.pid").exists()
    daemon.signal(signal.SIGTERM)
    assert await daemon.exit_code(within_s=30) == 0  # a deadline, not a measurement
    assert all(gone(pid) for pid in group)
    assert group_members(serve) == []
    for name in ("n3d.pid", "ollama.pid", "n3d.sock"):
        assert not (daemon.runtime / name).exists(), name
    assert daemon.states()[-2:] == ["stopping", "stopped"]


async def test_a_second_n3d_refuses_at_once_and_a_stranger_pid_file_is_left_alone(
    short_dir: Path, n3d: MakeN3d, bystander: subprocess.Popen[bytes]
) -> None:
    port = free_port()
    first = n3d(short_dir, port)
    # A leftover ollama.pid naming an unrelated process (a reused pid): never touched.
    first.runtime.mkdir(parents=True, mode=0o700)
    stranger = psutil.Process(bystander.pid)
    write_pid_file(first.runtime / "ollama.pid",
                   PidRecord(bystander.pid, bystander.pid, stranger.create_time(), SIM))
    first.start()
    await first.running()
    assert bystander.poll() is None
    assert first.events("orphan.stale_pid_file")
    second = n3d(short_dir, port).start()
    assert await second.exit_code(within_s=30) == 1  # it does not wait for the first one
    socket_path = first.runtime / "n3d.sock"
    message = f"n3d is already running (pid {first.pid}, socket {socket_path})"
    assert message in second.err.read_text()
    assert first.proc is not None and first.proc.poll() is None  # the first one carries on
    assert len(first.events("ollama.spawned")) == 1


async def test_after_n3d_is_sigkilled_the_next_run_cleans_the_orphans(
    short_dir: Path, n3d: MakeN3d
) -> None:
    port = free_port()
    killed = n3d(short_dir, port, **RUNNER_ENV).start()
    serve = await killed.running()
    await anyio.to_thread.run_sync(load_model, port)
    orphans = [p.pid for p in group_members(serve)]
    killed.signal(signal.SIGKILL)
    assert await killed.exit_code() == -signal.SIGKILL
    assert (killed.runtime / "ollama.pid").exists()
    assert any(not gone(pid) for pid in orphans)  # left behind, as after a real SIGKILL
    after = n3d(short_dir, port).start()
    fresh = await after.running()
    assert fresh != serve and all(gone(pid) for pid in orphans)
    found = after.events("orphan.found")
    assert found and found[0]["pid"] == serve
    after.signal(signal.SIGTERM)
    assert await after.exit_code() == 0


async def test_sd_notify_ready_status_watchdog_reloading_stopping(
    short_dir: Path, n3d: MakeN3d
) -> None:
    port = free_port()
    address = str(short_dir / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.setblocking(False)
        daemon = n3d(short_dir, port, NOTIFY_SOCKET=address, WATCHDOG_USEC="200000").start()
        await daemon.running()
        received: list[str] = []

        def drain() -> list[str]:
            while True:
                try:
                    received.append(sock.recv(4096).decode())
                except BlockingIOError:
                    return received

        await daemon.wait_for(lambda _: sum(m == "WATCHDOG=1" for m in drain()) >= 3)
        daemon.config.write_text("[ollama\nbroken = ")  # a bad config: logged, old one kept
        daemon.signal(signal.SIGHUP)
        await daemon.wait_for(lambda evs: any(e["event"] == "config.reload_failed" for e in evs))
        daemon.signal(signal.SIGTERM)
        assert await daemon.exit_code() == 0
        messages = drain()
    ready = [m for m in messages if m.startswith("READY=1")]
    assert ready and "STATUS=ollama" in ready[0]
    statuses = [m for m in messages if m.startswith("STATUS=ollama running (pid")]
    assert statuses, messages
    reloading = next(i for i, m in enumerate(messages) if m.startswith("RELOADING=1"))
    assert "MONOTONIC_USEC=" in messages[reloading]
    assert any(m.startswith("READY=1") for m in messages[reloading + 1:])
    assert any(m.startswith("STOPPING=1") for m in messages)
    assert daemon.states()[-1] == "stopped"  # it kept running on the old config until SIGTERM
