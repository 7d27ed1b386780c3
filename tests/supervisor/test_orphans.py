"""Orphans from ollama.pid: ours are stopped with their group; anything else is left alone."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from n3d.supervisor.orphans import (
    PidRecord,
    looks_like_ollama,
    read_pid_file,
    stop_orphans,
    write_pid_file,
)
from n3d.supervisor.process import INSTANCE_VAR, group_members

from .helpers import RUNNER_ENV, SIM, answers, eventually, free_port, load_model

Foreign = Callable[..., subprocess.Popen[bytes]]
TOKEN = "5eed" * 8  # an N3D_INSTANCE marker, as open_ollama makes them


def record_of(
    pid: int, cmdline: tuple[str, ...] = SIM, *, shift_s: float = 0.0, instance: str = ""
) -> PidRecord:
    return PidRecord(pid, pid, psutil.Process(pid).create_time() + shift_s, cmdline, instance)


async def serving_with_a_runner(
    tmp_path: Path, foreign: Foreign, instance: str = ""
) -> tuple[int, int]:
    """A simulator with one runner, as a previous n3d started it (with ``instance``)."""
    port = free_port()
    marker = {INSTANCE_VAR: instance} if instance else {}
    serve = foreign(tmp_path / "old", port, **RUNNER_ENV, **marker)
    await eventually(lambda: answers(port))
    await anyio.to_thread.run_sync(load_model, port)
    runners = [p.pid for p in group_members(serve.pid) if p.pid != serve.pid]
    assert len(runners) == 1
    return serve.pid, runners[0]


@pytest.mark.slow
async def test_an_orphaned_server_and_its_runners_are_stopped(
    tmp_path: Path, foreign: Foreign
) -> None:
    serve, runner = await serving_with_a_runner(tmp_path, foreign)
    pid_file = tmp_path / "ollama.pid"
    write_pid_file(pid_file, record_of(serve))
    assert read_pid_file(pid_file) == record_of(serve)
    outcome = await stop_orphans(pid_file, stop_timeout_s=2)
    assert outcome.action == "stopped" and outcome.pid == serve and outcome.killed == 2
    assert group_members(serve) == [] and not pid_file.exists()


@pytest.mark.slow
async def test_runners_of_a_serve_that_died_are_found_by_their_marker(
    tmp_path: Path, foreign: Foreign
) -> None:
    serve, runner = await serving_with_a_runner(tmp_path, foreign, TOKEN)
    pid_file = tmp_path / "ollama.pid"
    write_pid_file(pid_file, record_of(serve, instance=TOKEN))
    os.kill(serve, signal.SIGKILL)  # as if serve died with the old n3d
    await eventually(lambda: [p.pid for p in group_members(serve)] == [runner])
    outcome = await stop_orphans(pid_file, stop_timeout_s=2)
    assert outcome.action == "stopped" and outcome.killed == 1
    await eventually(lambda: not group_members(serve))


async def test_a_reused_pid_is_never_touched(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    pid_file = tmp_path / "ollama.pid"
    # Same pid, different create time: the pid was reused by someone else.
    write_pid_file(pid_file, record_of(bystander.pid, shift_s=-5.0))
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "stale"
    # Same pid and create time, but not an Ollama command line.
    write_pid_file(pid_file, record_of(bystander.pid, ("ollama", "serve")))
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "stale"
    assert bystander.poll() is None and not pid_file.exists()


@pytest.fixture
def pathed_bystander(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated program run from a folder named "ollama" (a virtualenv's, say)."""
    home = tmp_path / "ollama" / "bin"
    home.mkdir(parents=True)
    sleeper = home / "sleep"
    sleeper.symlink_to(shutil.which("sleep") or "/bin/sleep")
    proc = subprocess.Popen([str(sleeper), "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait(10)


async def test_a_process_whose_path_merely_mentions_ollama_is_not_taken_for_serve(
    tmp_path: Path, pathed_bystander: subprocess.Popen[bytes]
) -> None:
    # Found on a machine whose worktree was /work/wt/ollama: an old-format pid file
    # (no marker) whose pid and create time match must still not make a program whose
    # path mentions "ollama" serve; only the program's own name counts.
    pid_file = tmp_path / "ollama.pid"
    write_pid_file(pid_file, record_of(pathed_bystander.pid, ("ollama", "serve")))
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "stale"
    assert pathed_bystander.poll() is None


async def test_a_missing_or_foreign_pid_file_changes_nothing(tmp_path: Path) -> None:
    pid_file = tmp_path / "ollama.pid"
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "none"
    pid_file.write_text("1\n")  # pid 1 and no record: never acted on
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "none"


@pytest.mark.parametrize(("pid", "pgid"), [(-1, -1), (0, 0), (1, 1), (2**40, 0)])
async def test_a_pid_file_naming_no_possible_child_changes_nothing(
    tmp_path: Path, pid: int, pgid: int
) -> None:
    # Never psutil.Process(-1) (ValueError), never a signal to group 0 (n3d's own).
    pid_file = tmp_path / "ollama.pid"
    write_record(pid_file, pid, pgid, 1.0, SIM, TOKEN)
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "none"
    assert not pid_file.exists()


def test_what_looks_like_ollama() -> None:
    assert looks_like_ollama(["/usr/local/bin/ollama", "serve"])
    assert looks_like_ollama(["/usr/bin/ollama_llama_server", "--model", "x"])
    assert looks_like_ollama(["llama-server", "--model", "x", "--port", "1"])
    assert looks_like_ollama(list(SIM)) and looks_like_ollama(["python", "-m", "n3d.sim.runner"])
    assert looks_like_ollama(["/opt/my-llm", "serve"], ("/opt/my-llm", "serve"))
    assert not looks_like_ollama(["sleep", "60"])
    assert not looks_like_ollama(["python", "-c", "pass"], SIM)


def log_follower(home: Path, *, wrapped: bool = False, **popen: Any) -> subprocess.Popen[bytes]:
    """An unrelated process in a session of its own, with "ollama" in its arguments.

    ``wrapped``: a shell leads the group and `tail` is a member (it is not its leader).
    """
    server_log = home / ".ollama" / "logs" / "server.log"
    server_log.parent.mkdir(parents=True, exist_ok=True)
    server_log.touch()
    tail = ["tail", "-f", str(server_log)]
    argv = ["sh", "-c", f'{" ".join(tail)}; exit 0'] if wrapped else tail
    return subprocess.Popen(argv, start_new_session=True, **popen)


@pytest.fixture
def strangers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Unrelated processes a test starts; their groups are killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def write_record(
    path: Path, pid: int, pgid: int, created: float, cmdline: tuple[str, ...], instance: str
) -> None:
    """``ollama.pid`` as n3d writes it (``instance`` "": as written before markers)."""
    data: dict[str, Any] = {"pid": pid, "pgid": pgid, "create_time": created,
                            "cmdline": list(cmdline)}
    if instance:
        data["instance"] = instance
    path.write_text(f"{pid}\n{json.dumps(data)}\n")


def free_pid() -> int:
    """A pid that was used and is free again (the old serve's)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def marked_serve() -> subprocess.Popen[bytes]:
    """A stand-in for a serve n3d started: marked, in a group of its own."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "ollama", "serve"],
        start_new_session=True,
        env={**os.environ, INSTANCE_VAR: TOKEN},
    )


def members_of(pgid: int) -> list[int]:
    return sorted(p.pid for p in group_members(pgid))


@pytest.mark.parametrize("instance", ["", TOKEN], ids=["old-pid-file", "with-marker"])
async def test_a_reused_process_group_is_never_touched(
    tmp_path: Path, strangers: list[subprocess.Popen[bytes]], instance: str
) -> None:
    # The old serve and its group died; its group id now belongs to someone's
    # `tail -f ~/.ollama/logs/server.log`: newer than serve, "ollama" in its args.
    tail = log_follower(tmp_path, wrapped=True)
    strangers.append(tail)
    await eventually(lambda: len(members_of(tail.pid)) == 2)
    follower = next(pid for pid in members_of(tail.pid) if pid != tail.pid)
    created = psutil.Process(tail.pid).create_time() - 5.0  # plausible, and wrong
    pid_file = tmp_path / "ollama.pid"
    write_record(pid_file, free_pid(), tail.pid, created, SIM, instance)
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "stale"
    assert tail.poll() is None and psutil.pid_exists(follower)
    assert members_of(tail.pid) == sorted([tail.pid, follower])


NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")


def spawn_at_pid(
    target: int, start: Callable[[], subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes] | None:
    """Start a process whose pid is ``target`` (forced through ns_last_pid); None if raced."""
    for _ in range(50):
        NS_LAST_PID.write_text(str(target - 1))
        proc = start()
        if proc.pid == target:
            return proc
        proc.kill()
        proc.wait()
    return None


@pytest.mark.skipif(
    not os.access(NS_LAST_PID, os.W_OK),
    reason="forcing pid reuse needs a writable /proc/sys/kernel/ns_last_pid "
    "(root, or CAP_CHECKPOINT_RESTORE, on Linux)",
)
async def test_an_unrelated_process_that_really_reuses_the_old_group_id_survives(
    tmp_path: Path, strangers: list[subprocess.Popen[bytes]]
) -> None:
    # A real old serve: marked as n3d marks its spawns, in a group of its own.
    old = marked_serve()
    pgid, created = old.pid, psutil.Process(old.pid).create_time()
    pid_file = tmp_path / "ollama.pid"
    write_record(pid_file, old.pid, pgid, created, tuple(psutil.Process(old.pid).cmdline()), TOKEN)
    old.kill()  # the old n3d and its serve died; the group is empty
    old.wait()
    # The kernel hands the same pid, and so the same group id, to a stranger.
    tail = spawn_at_pid(old.pid, lambda: log_follower(tmp_path, wrapped=True))
    if tail is None:
        pytest.skip("other processes took the pid first, 50 times")
    strangers.append(tail)
    assert os.getpgid(tail.pid) == pgid
    await eventually(lambda: len(members_of(tail.pid)) == 2)
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "stale"
    assert tail.poll() is None and len(members_of(tail.pid)) == 2
