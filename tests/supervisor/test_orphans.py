"""Orphans from ollama.pid: ours are stopped with their group; anything else is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

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
from n3d.supervisor.process import group_members

from .helpers import RUNNER_ENV, SIM, answers, eventually, free_port, load_model

pytestmark = pytest.mark.anyio
Foreign = Callable[..., subprocess.Popen[bytes]]


def record_of(pid: int, cmdline: tuple[str, ...] = SIM, *, shift_s: float = 0.0) -> PidRecord:
    return PidRecord(pid, pid, psutil.Process(pid).create_time() + shift_s, cmdline)


async def serving_with_a_runner(tmp_path: Path, foreign: Foreign) -> tuple[int, int]:
    port = free_port()
    serve = foreign(tmp_path / "old", port, **RUNNER_ENV)
    await eventually(lambda: answers(port))
    await anyio.to_thread.run_sync(load_model, port)
    runners = [p.pid for p in group_members(serve.pid) if p.pid != serve.pid]
    assert len(runners) == 1
    return serve.pid, runners[0]


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


async def test_runners_of_a_serve_that_died_are_found_by_their_group(
    tmp_path: Path, foreign: Foreign
) -> None:
    serve, runner = await serving_with_a_runner(tmp_path, foreign)
    pid_file = tmp_path / "ollama.pid"
    write_pid_file(pid_file, record_of(serve))
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


async def test_a_missing_or_foreign_pid_file_changes_nothing(tmp_path: Path) -> None:
    pid_file = tmp_path / "ollama.pid"
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "none"
    pid_file.write_text("1\n")  # pid 1 and no record: never acted on
    assert (await stop_orphans(pid_file, stop_timeout_s=1)).action == "none"


def test_what_looks_like_ollama() -> None:
    assert looks_like_ollama(["/usr/local/bin/ollama", "serve"])
    assert looks_like_ollama(["/usr/bin/ollama_llama_server", "--model", "x"])
    assert looks_like_ollama(["llama-server", "--model", "x", "--port", "1"])
    assert looks_like_ollama(list(SIM)) and looks_like_ollama(["python", "-m", "n3d.sim.runner"])
    assert looks_like_ollama(["/opt/my-llm", "serve"], ("/opt/my-llm", "serve"))
    assert not looks_like_ollama(["sleep", "60"])
    assert not looks_like_ollama(["python", "-c", "pass"], SIM)
