"""One pid file per server, and the files no server of the config claims (fast, no serve)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from n3d.supervisor.orphans import PidRecord, stop_stray_orphans, write_pid_file
from n3d.supervisor.pidfile import pid_file_name, pid_files

from .helpers import SIM


def test_the_first_server_keeps_ollama_pid_and_the_others_are_named() -> None:
    assert pid_file_name("default", first=True) == "ollama.pid"
    assert pid_file_name("gpu0", first=True) == "ollama.pid"
    assert pid_file_name("gpu1", first=False) == "ollama-gpu1.pid"


def test_every_servers_pid_file_is_found_and_nothing_else(tmp_path: Path) -> None:
    for name in ("ollama.pid", "ollama-b.pid", "ollama-gone.pid", "ollama.pid.tmp", "n3d.pid"):
        (tmp_path / name).write_text("1\n")
    (tmp_path / "ollama-dir.pid").mkdir()
    found = [p.name for p in pid_files(tmp_path)]
    assert found == ["ollama-b.pid", "ollama-gone.pid", "ollama.pid"]
    assert pid_files(tmp_path / "missing") == []


def _dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


async def test_a_removed_servers_pid_file_is_handled_and_claimed_ones_are_left(
    tmp_path: Path,
) -> None:
    for name in ("ollama.pid", "ollama-b.pid", "ollama-gone.pid"):
        pid = _dead_pid()
        write_pid_file(tmp_path / name, PidRecord(pid, pid, 1.0, SIM, "5eed"))
    claimed = [tmp_path / "ollama.pid", tmp_path / "ollama-b.pid"]
    outcomes = await stop_stray_orphans(tmp_path, claimed=claimed, stop_timeout_s=1)
    assert [o.action for o in outcomes] == ["stale"]
    assert [p.name for p in pid_files(tmp_path)] == ["ollama-b.pid", "ollama.pid"]
