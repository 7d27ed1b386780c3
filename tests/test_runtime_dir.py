"""A runtime dir removed while n3d runs (a /tmp cleaner): its lock, pid file and socket return."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from n3d.errors import AlreadyRunning, PathError
from n3d.paths import ensure_private_dir
from n3d.runtime_dir import RuntimeFiles, acquire_lock, keep_runtime_dir
from n3d.testing import DaemonProcess, wait_until

N3CTL = Path(sys.executable).parent / "n3ctl"


@pytest.fixture
def files(tmp_path: Path) -> Iterator[RuntimeFiles]:
    directory = ensure_private_dir(tmp_path / "n3")
    claimed = RuntimeFiles(directory, directory / "n3d.sock")
    claimed.claim()
    yield claimed
    claimed.release()


def test_claim_holds_the_lock_and_writes_the_pid(files: RuntimeFiles) -> None:
    assert files.pid_path.read_text() == f"{os.getpid()}\n"
    assert files.missing() == []
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        os.close(acquire_lock(files.directory, files.socket_path))


def test_a_removed_runtime_dir_is_made_again_and_locked_again(files: RuntimeFiles) -> None:
    shutil.rmtree(files.directory)
    assert files.missing() == ["n3d.lock", "n3d.pid"]
    assert files.restore() == ["directory", "n3d.lock", "n3d.pid"]
    assert stat.S_IMODE(os.lstat(files.directory).st_mode) == 0o700
    assert files.pid_path.read_text() == f"{os.getpid()}\n"
    assert files.missing() == []
    with pytest.raises(AlreadyRunning):  # a second n3d is refused again
        os.close(acquire_lock(files.directory, files.socket_path))


def test_a_runtime_dir_another_n3d_has_locked_meanwhile_is_left_to_it(files: RuntimeFiles) -> None:
    shutil.rmtree(files.directory)
    ensure_private_dir(files.directory)
    other = acquire_lock(files.directory, files.socket_path)
    try:
        with pytest.raises(AlreadyRunning):
            files.restore()
    finally:
        os.close(other)


def test_a_runtime_dir_that_is_no_longer_safe_is_not_used(files: RuntimeFiles) -> None:
    shutil.rmtree(files.directory)
    files.directory.mkdir(mode=0o755)
    os.chmod(files.directory, 0o755)  # someone else's trap, as far as n3d can tell
    with pytest.raises(PathError, match="must be private"):
        files.restore()


class _Server:
    """The RPC server as the watch sees it."""

    def __init__(self, *, activated: bool) -> None:
        self.activated = activated
        self.lost = True
        self.rebinds = 0

    def socket_lost(self) -> bool:
        return self.lost

    def rebind(self) -> None:
        self.rebinds += 1
        self.lost = False


@pytest.mark.anyio
async def test_the_watch_puts_back_the_files_then_the_socket(files: RuntimeFiles) -> None:
    server = _Server(activated=False)
    shutil.rmtree(files.directory)
    with capture_logs() as logs:
        with anyio.move_on_after(0.5):
            await keep_runtime_dir(files, server, interval_s=0.01)
    assert files.missing() == [] and server.rebinds == 1
    events = [e["event"] for e in logs]
    assert events == ["runtime_dir.restored", "rpc.socket_restored"]
    assert logs[0]["restored"] == ["directory", "n3d.lock", "n3d.pid"]


@pytest.mark.anyio
async def test_a_removed_systemd_socket_is_reported_once(files: RuntimeFiles) -> None:
    server = _Server(activated=True)
    with capture_logs() as logs:
        with anyio.move_on_after(0.3):
            await keep_runtime_dir(files, server, interval_s=0.01)
    assert server.rebinds == 0
    assert [e["event"] for e in logs] == ["rpc.socket_removed"]


@pytest.mark.slow
def test_n3ctl_reaches_a_daemon_whose_runtime_dir_was_removed() -> None:
    home = Path(tempfile.mkdtemp(prefix="n3r", dir="/tmp"))
    daemon = DaemonProcess(home, default_socket=True)
    try:
        daemon.start().wait_ready()
        shutil.rmtree(daemon.runtime)  # what a /tmp cleaner does
        env = {k: v for k, v in daemon.env.items() if not k.startswith("N3D_")}

        def status_answers() -> bool:
            run = subprocess.run(
                [str(N3CTL), "status"], env=env, capture_output=True, timeout=30, check=False
            )
            return run.returncode == 0

        wait_until(status_answers, 60, "n3ctl status on the default socket")
        assert (daemon.runtime / "n3d.pid").read_text().strip() == str(daemon.pid)
        assert daemon.events("runtime_dir.restored") and daemon.events("rpc.socket_restored")
        second = DaemonProcess(home, default_socket=True, name="second").start()
        assert second.proc is not None and second.proc.wait(30) == 1  # the lock holds again
        assert "already running" in second.stderr()
    finally:
        daemon.cleanup()
        shutil.rmtree(home, ignore_errors=True)
