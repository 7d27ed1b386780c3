"""The process as a supervisor sees it: CLI, startup order, port conflicts, signals,
runner children and logs (research/ollama.md §3)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from n3d.testing.simulator import SimulatorProcess

pytestmark = pytest.mark.slow

StartSim = Callable[..., SimulatorProcess]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "n3d.sim", *args], capture_output=True, text=True, timeout=20
    )


def test_usage_errors_exit_2_with_usage() -> None:
    for args in ([], ["run"], ["serve", "--bogus"]):
        done = _cli(*args)
        assert done.returncode == 2
        assert "Usage:" in done.stderr and "ollama-sim serve" in done.stderr


def test_help_exits_0() -> None:
    done = _cli("serve", "--help")
    assert done.returncode == 0 and "Usage:" in done.stdout


def test_taken_port_prints_ollamas_error_and_exits_1(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            **os.environ,
            "OLLAMA_HOST": f"127.0.0.1:{port}",
            "OLLAMA_MODELS": str(tmp_path / "m"),
        }
        done = subprocess.run(
            [sys.executable, "-m", "n3d.sim", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        f"Error: listen tcp 127.0.0.1:{port}: bind: address already in use"
    )


def test_port_zero_picks_an_ephemeral_port_and_logs_it(tmp_path: Path) -> None:
    sim = SimulatorProcess(tmp_path, {"OLLAMA_HOST": "127.0.0.1:0"})
    sim.start()
    try:
        deadline = time.monotonic() + 10
        while not (
            m := re.search(r"Listening on 127\.0\.0\.1:(\d+) \(version [\d.]+\)", sim.stderr())
        ):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        sim.port = int(m.group(1))
        sim.wait_ready()
    finally:
        sim.kill_group()


def test_binds_before_answering_during_ready_delay(start_sim: StartSim) -> None:
    # 3 s: the checks below must fall inside the delay, even on a busy machine.
    sim = start_sim({"OLLAMA_SIM_READY_DELAY": "3"}, ready=False)
    deadline = time.monotonic() + 5
    while "Listening on" not in sim.stderr():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with socket.create_connection(("127.0.0.1", sim.port), timeout=2):
        pass  # the TCP connect succeeds ...
    assert not sim.is_ready(timeout=0.3)  # ... but HTTP is not answered yet
    sim.wait_ready(timeout=5)


def test_sigterm_exits_0_and_kills_runners(
    sim_with_models: SimulatorProcess, client_models: httpx.Client
) -> None:
    client_models.post("/api/generate", json={"model": "llama3.2"})
    client_models.post("/api/embed", json={"model": "nomic-embed-text"})
    runners = sim_with_models.runner_pids()
    assert len(runners) == 2  # one runner child per loaded model, in the server's group
    assert sim_with_models.terminate() == 0
    assert sim_with_models.group_pids() == set()


def test_sigterm_cuts_open_streams_at_once(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_PULL_SECONDS": "30"})
    with (
        httpx.Client(base_url=sim.url, timeout=10) as c,
        c.stream("POST", "/api/pull", json={"model": "llama3"}) as reply,
    ):
        lines = reply.iter_lines()
        next(lines)
        next(lines)
        os.kill(sim.pid, signal.SIGTERM)
        last: dict[str, int] = {}
        try:
            for line in lines:
                last = json.loads(line) if line.strip() else last
            cut = False
        except httpx.HTTPError:
            cut = True
    assert cut, "the stream must be cut, not finished"
    # At once: the pull had some 28 s to go. Judged by how far the simulator's own
    # progress got (its clock, which stops with it), not by the test's wall clock.
    assert last.get("completed", 0) < last.get("total", 1) / 2, last
    assert sim.proc is not None and sim.proc.wait(5) == 0


def test_second_signal_is_ignored(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2"})
    httpx.post(sim.url + "/api/generate", json={"model": "llama3.2"}, timeout=10)
    os.kill(sim.pid, signal.SIGINT)
    os.kill(sim.pid, signal.SIGTERM)
    assert sim.proc is not None and sim.proc.wait(5) == 0


def test_sigkill_leaves_runners_orphaned_like_ollama(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2"})
    httpx.post(sim.url + "/api/generate", json={"model": "llama3.2"}, timeout=10)
    runners = sim.runner_pids()
    os.kill(sim.pid, signal.SIGKILL)
    assert sim.proc is not None and sim.proc.wait(5) == -signal.SIGKILL
    assert sim.group_pids() == runners  # still alive: killpg is the supervisor's job
    os.killpg(sim.pid, signal.SIGKILL)


def _logged(read: Callable[[], str], pattern: str, within_s: float = 10.0) -> bool:
    """Whether ``pattern`` shows up in the log ``read`` returns within ``within_s``.

    Like gin, the simulator writes an access line after the reply has gone out,
    so a client can hold its answer before the line is in the file.
    """
    deadline = time.monotonic() + within_s
    while not re.search(pattern, read(), re.M):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_logs_like_ollama(sim: SimulatorProcess, client: httpx.Client) -> None:
    client.get("/api/tags")
    client.get("/nope")
    err = sim.stderr()
    assert re.search(
        r"^time=\S+ level=INFO source=routes\.go:\d+ msg=\"server config\" env=", err, re.M
    )
    assert f'msg="Listening on 127.0.0.1:{sim.port} (version ' in err
    assert _logged(
        sim.stdout,
        r"^\[GIN\] \d{4}/\d\d/\d\d - \d\d:\d\d:\d\d \|\s+200 \|\s+\S+ \|\s+"
        r'127\.0\.0\.1 \| GET\s+"/api/tags"$',
    ), sim.stdout()
    assert _logged(sim.stdout, r'\|\s+404 \|.*"/nope"$'), sim.stdout()


def test_gin_debug_route_dump_unless_release_mode(start_sim: StartSim) -> None:
    sim = start_sim({"GIN_MODE": ""})
    assert "[GIN-debug] POST   /api/pull" in sim.stdout()
