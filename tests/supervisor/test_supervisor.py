"""The supervisor in-process, driving real simulator processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from n3d.api.faults import code_of
from n3d.errors import NotManaged
from n3d.metrics import REGISTRY
from n3d.state import ServerState
from n3d.supervisor.process import group_members

from .helpers import (
    RUNNER_ENV,
    SIM,
    answers,
    eventually,
    free_port,
    load_model,
    make,
    requests_seen,
    set_faults,
    settings_for,
    settled,
    sim_env,
    states,
    supervising,
    supervisor_for,
    until,
)

pytestmark = pytest.mark.slow

Foreign = Callable[..., subprocess.Popen[bytes]]
S = ServerState


async def test_start_is_healthy_only_once_head_answers_after_the_slow_start(
    tmp_path: Path, pgids: list[int]
) -> None:
    sup = make(tmp_path, free_port(), OLLAMA_SIM_READY_DELAY="1.0")
    async with supervising(sup, pgids):
        began = time.monotonic()
        snap = await until(sup, S.RUNNING)
        took = time.monotonic() - began
        assert states(sup) == ["starting", "running"]
        assert took >= 1.0, took  # not before the ready delay (until() is the deadline)
        assert snap.owned and snap.pid is not None
        await eventually(lambda: sup.snapshot.version == "0.13.5")
        assert os.getpgid(snap.pid) == snap.pid != os.getpgid(0)
        pid_file = tmp_path / "home" / "run" / "ollama.pid"
        assert pid_file.read_text().splitlines()[0] == str(snap.pid)
    assert sup.snapshot.state is S.STOPPED and not pid_file.exists()
    assert group_members(snap.pid) == []


async def test_sigkill_of_serve_restarts_it_and_counts_the_restart(
    tmp_path: Path, pgids: list[int]
) -> None:
    sup = make(tmp_path, free_port())
    async with supervising(sup, pgids):
        first = await until(sup, S.RUNNING)
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        with anyio.fail_after(20):
            second = await sup.wait_for(lambda s: s.state is S.RUNNING and s.pid != first.pid)
        assert states(sup) == ["starting", "running", "backoff", "starting", "running"]
        crash = sup.store.history[2]
        assert "signal SIGKILL" in crash.reason
        assert second.restarts == 1 and second.last_exit == "signal SIGKILL"
        assert REGISTRY.snapshot()["counters"]["ollama.server.restarts"] == 1
        assert group_members(first.pid) == []


async def test_a_command_that_exits_at_once_backs_off_until_fatal_and_start_clears_it(
    tmp_path: Path, pgids: list[int]
) -> None:
    failing = (sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)")
    sup = make(tmp_path, free_port(), command=failing)
    async with supervising(sup, pgids):
        snap = await until(sup, S.FATAL)
        assert "max_failures = 3" in snap.reason
        delays = [e.reason for e in sup.store.history if e.target is S.BACKOFF]
        assert len(delays) == 3 and "exit code 3" in delays[0] and "boom" in delays[0]
        backoffs = [float(r.rsplit("retry in ", 1)[1].rstrip("s")) for r in delays]
        assert backoffs == [0.05, 0.1, 0.2]
        assert states(sup)[-1] == "fatal"
        # Fixed: server.start (here its Python form) clears fatal and starts again.
        sup.command = SIM
        after = await sup.start()
        assert after.state is S.RUNNING


async def test_a_missing_executable_goes_fatal_at_once_and_start_tries_again(
    tmp_path: Path, pgids: list[int]
) -> None:
    sup = make(tmp_path, free_port(), command=("/nonexistent/no-such-ollama", "serve"))
    async with supervising(sup, pgids):
        snap = await until(sup, S.FATAL)
        assert [e.target for e in sup.store.history] == [S.STARTING, S.FATAL]
        assert "install it, then run: n3ctl start" in snap.reason
        assert snap.last_error is not None and "n3d run --simulate" in snap.last_error
        sup.command = SIM  # installed now
        assert (await sup.start()).state is S.RUNNING


async def test_a_hung_server_is_degraded_then_killed_and_restarted(
    tmp_path: Path, pgids: list[int]
) -> None:
    home = tmp_path / "home"
    sup = make(tmp_path, free_port())
    async with supervising(sup, pgids):
        first = await until(sup, S.RUNNING)
        set_faults(home, hang=True)
        # failures_before_restart × interval + health_timeout: about 1 s here. Deadlines,
        # not measurements: ten times that, and far below the 30 s of a default interval.
        with anyio.fail_after(10):
            await until(sup, S.DEGRADED)
            await until(sup, S.STOPPING)
        set_faults(home)  # the next server answers again
        with anyio.fail_after(20):  # plus stop_timeout and a new start
            await sup.wait_for(lambda s: s.state is S.RUNNING and s.pid != first.pid)
        assert "health checks failed in a row" in sup.store.history[-4].reason
        assert states(sup)[-5:] == ["degraded", "stopping", "backoff", "starting", "running"]


async def test_stop_and_restart_commands_and_their_states(
    tmp_path: Path, pgids: list[int]
) -> None:
    sup = make(tmp_path, free_port())
    async with supervising(sup, pgids):
        first = await until(sup, S.RUNNING)
        restarted = await sup.restart()
        assert restarted.state is S.RUNNING and restarted.pid != first.pid
        stopped = await sup.stop()
        assert stopped.state is S.STOPPED and stopped.pid is None
        assert (await sup.stop()).state is S.STOPPED  # idempotent
        started = await sup.start()
        assert started.state is S.RUNNING
        assert states(sup) == ["starting", "running", "stopping", "starting", "running",
                               "stopping", "stopped", "starting", "running"]
        for pid in (first.pid, restarted.pid):
            assert pid is not None and group_members(pid) == []


STUBBORN_SERVER = (sys.executable, "-c", """
import http.server, os, signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a "runner"
host, port = os.environ["OLLAMA_HOST"].rsplit(":", 1)
class H(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer((host, int(port)), H).serve_forever()
""")


async def test_a_child_that_ignores_sigterm_is_killed_after_stop_timeout(
    tmp_path: Path, pgids: list[int]
) -> None:
    sup = make(tmp_path, free_port(), command=STUBBORN_SERVER)
    async with supervising(sup, pgids):
        snap = await until(sup, S.RUNNING)
        assert snap.pid is not None
        await eventually(lambda: len(group_members(snap.pid)) == 2)
        began = time.monotonic()
        with anyio.fail_after(30):  # a deadline, not a measurement: SIGKILL came, no hang
            stopped = await sup.stop()
        took = time.monotonic() - began
        assert stopped.state is S.STOPPED and stopped.last_exit == "signal SIGKILL"
        assert took >= sup.settings.server.stop_timeout_s  # SIGTERM had its time first
        assert group_members(snap.pid) == []


async def test_runners_do_not_survive_a_stop(tmp_path: Path, pgids: list[int]) -> None:
    port = free_port()
    sup = make(tmp_path, port, **RUNNER_ENV)
    async with supervising(sup, pgids):
        snap = await until(sup, S.RUNNING)
        assert snap.pid is not None
        await anyio.to_thread.run_sync(load_model, port)
        assert len(group_members(snap.pid)) == 2  # serve and one runner
        assert sup.process is not None and sup.process.resources().processes == 2
        await sup.stop()
        assert group_members(snap.pid) == []


async def test_auto_adopts_a_server_that_already_answers(
    tmp_path: Path, pgids: list[int], foreign: Foreign
) -> None:
    port = free_port()
    other = foreign(tmp_path / "other", port)
    await eventually(lambda: answers(port))
    sup = make(tmp_path, port, mode="auto")
    async with supervising(sup, pgids):
        snap = await until(sup, S.EXTERNAL)
        assert not snap.owned and snap.pid is None
        assert "adopted" in snap.reason and sup.process is None
        with pytest.raises(NotManaged):
            await sup.stop()
        assert (await sup.start()).state is S.EXTERNAL  # already served: nothing to do
    assert other.poll() is None  # never stopped what it did not start
    # ... and when the adopted server goes away, auto starts its own.
    sup = make(tmp_path, port, mode="auto")
    async with supervising(sup, pgids):
        await until(sup, S.EXTERNAL)
        other.terminate()
        other.wait(10)
        snap = await until(sup, S.RUNNING)
        assert snap.owned and states(sup)[-3:] == ["unreachable", "starting", "running"]


async def test_managed_says_which_process_holds_the_port(
    tmp_path: Path, pgids: list[int], foreign: Foreign
) -> None:
    port = free_port()
    other = foreign(tmp_path / "other", port)
    await eventually(lambda: answers(port))
    sup = make(tmp_path, port, mode="managed")
    async with supervising(sup, pgids):
        snap = await until(sup, S.BACKOFF)
        assert snap.port_holder is not None and f"pid {other.pid} (python" in snap.port_holder
        assert f"already in use by pid {other.pid}" in (snap.last_error or "")
        assert f"pid {other.pid}" in snap.reason
        assert sup.process is None  # n3d did not even try to spawn into a taken port
    assert other.poll() is None


async def test_external_mode_never_starts_or_stops(
    tmp_path: Path, pgids: list[int], foreign: Foreign
) -> None:
    port = free_port()
    sup = make(tmp_path, port, mode="external")
    async with supervising(sup, pgids):
        await until(sup, S.UNREACHABLE)
        for command in (sup.start, sup.stop, sup.restart):
            with pytest.raises(NotManaged) as caught:
                await command()
            assert code_of(caught.value) == 1006
        other = foreign(tmp_path / "other", port)
        snap = await until(sup, S.EXTERNAL)
        assert not snap.owned and sup.process is None
    assert other.poll() is None


async def test_hundred_concurrent_health_requests_cause_one_http_probe(
    tmp_path: Path, pgids: list[int]
) -> None:
    port = free_port()
    home = tmp_path / "home"
    settings = settings_for(tmp_path, port, ollama={"health_check_interval": 30})
    sup = supervisor_for(settings, command=SIM, environ=sim_env(home, port))
    async with supervising(sup, pgids):
        await until(sup, S.RUNNING)
        sup.health.forget()  # start from an empty cache, as after the interval
        # The simulator logs each request just after its reply: wait for the start's
        # probes to be logged before counting.
        before = await settled(lambda: requests_seen(home))
        probes = sup.health.probes
        reports = []

        async def ask() -> None:
            reports.append(await sup.health.check())

        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(ask)
        assert sup.health.probes - probes == 1
        assert all(r.ok for r in reports) and sum(not r.cached for r in reports) == 100
        again = await sup.health.check()  # within the interval: cached, with its age
        assert again.cached and again.age_s > 0
        assert sup.health.probes - probes == 1
        # ... and the server saw exactly one request (the log catches up, then stays).
        await eventually(lambda: requests_seen(home) - before >= 1)
        assert await settled(lambda: requests_seen(home)) - before == 1
