"""The supervisor at its edges: commands in the gap after a child ended, reloads,
resources off the event loop, a child that never exits. Real processes throughout."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from n3d.config.reload import plan_reload
from n3d.state import ServerState
from n3d.supervisor.groups import VERIFY_S
from n3d.supervisor.process import OllamaProcess, Resources
from n3d.supervisor.supervisor import Supervisor

from .helpers import (
    JsonLogs,
    answers,
    eventually,
    free_port,
    make,
    settings_for,
    sim_env,
    states,
    supervising,
    supervisor_for,
    until,
)

S = ServerState

# A serve whose grandchild, in a session of its own, keeps serve's stdout open after
# serve is gone; the group kill misses it, so n3d waits out the output drain's grace
# (1 s) after the stop: a cancel can land there, after the run's decision was made.
LEAKY_SERVER = (sys.executable, "-c", """
import http.server, os, subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              start_new_session=True)
with open(os.environ["N3D_TEST_GRANDCHILDREN"], "a") as f:
    f.write(f"{grandchild.pid}\\n")
if os.environ.get("N3D_TEST_EXIT_AT_ONCE"):
    sys.exit(1)
host, port = os.environ["OLLAMA_HOST"].rsplit(":", 1)
class H(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer((host, int(port)), H).serve_forever()
""")


@pytest.fixture
def grandchildren(tmp_path: Path, pgids: list[int]) -> Iterator[Path]:
    """Where LEAKY_SERVER notes its grandchildren; each is killed at teardown."""
    path = tmp_path / "grandchildren"
    yield path
    if path.exists():
        for pid in map(int, path.read_text().split()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def leaky(tmp_path: Path, grandchildren: Path, *, exit_at_once: bool) -> Supervisor:
    extra = {"N3D_TEST_GRANDCHILDREN": str(grandchildren)}
    if exit_at_once:
        extra["N3D_TEST_EXIT_AT_ONCE"] = "1"
    return make(tmp_path, free_port(), command=LEAKY_SERVER, **extra)


def in_the_gap(sup: Supervisor) -> bool:
    """serve is gone and stopped, but its block still waits for the output to close."""
    child = sup.process
    return child is not None and child.stop_report is not None


@pytest.mark.slow
@pytest.mark.parametrize("phase", [S.STARTING, S.RUNNING])
async def test_restart_just_after_the_child_ended_starts_again(
    tmp_path: Path, pgids: list[int], grandchildren: Path, phase: ServerState
) -> None:
    sup = leaky(tmp_path, grandchildren, exit_at_once=phase is S.STARTING)
    async with supervising(sup, pgids):
        if phase is S.RUNNING:
            first = await until(sup, S.RUNNING)
            assert first.pid is not None
            os.kill(first.pid, signal.SIGKILL)
        await eventually(lambda: in_the_gap(sup))
        assert sup.snapshot.state is phase  # still claims the child that is gone
        restarted = await sup.restart()  # used to raise InvalidTransition out of run()
        assert restarted.state is (S.BACKOFF if phase is S.STARTING else S.RUNNING)
        edge = next(e for e in reversed(sup.store.history) if e.target is S.STOPPING)
        assert edge.source is phase and edge.reason == "server.restart"
        assert states(sup)[states(sup).index("stopping") + 1] == "starting"
        assert (await sup.stop()).state is S.STOPPED


@pytest.mark.slow
async def test_stop_just_after_the_child_ended_ends_stopped(
    tmp_path: Path, pgids: list[int], grandchildren: Path
) -> None:
    sup = leaky(tmp_path, grandchildren, exit_at_once=True)
    async with supervising(sup, pgids):
        await eventually(lambda: in_the_gap(sup))
        with anyio.fail_after(30):  # a deadline, not a measurement
            stopped = await sup.stop()  # used to wait its whole timeout and stay "starting"
        assert stopped.state is S.STOPPED and stopped.pid is None
        assert states(sup)[-2:] == ["stopping", "stopped"]
        assert (await sup.start()).state in (S.BACKOFF, S.FATAL)  # and it starts again


@pytest.mark.slow
async def test_cancelled_just_after_the_child_ended_ends_stopped(
    tmp_path: Path, pgids: list[int], grandchildren: Path
) -> None:
    sup = leaky(tmp_path, grandchildren, exit_at_once=True)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await eventually(lambda: in_the_gap(sup))
        assert sup.snapshot.state is S.STARTING
        tg.cancel_scope.cancel()  # as the daemon does once its bounded shutdown is over
    assert sup.snapshot.state is S.STOPPED and sup.snapshot.pid is None
    assert states(sup)[-2:] == ["stopping", "stopped"]


@pytest.mark.parametrize(
    "path", [[S.STARTING], [S.STARTING, S.RUNNING], [S.STARTING, S.RUNNING, S.DEGRADED]]
)
async def test_settling_a_state_that_still_claims_a_child_goes_through_stopping(
    tmp_path: Path, path: list[ServerState]
) -> None:
    # What run() does on its way out, whatever state a cancelled lifecycle left.
    sup = make(tmp_path, free_port())
    for state in path:
        sup.transition(state, "as a lifecycle would")
    sup._settle("n3d is shutting down")
    assert states(sup)[-2:] == ["stopping", "stopped"] and sup.snapshot.state is S.STOPPED


@pytest.mark.slow
async def test_a_reload_keeps_mode_and_base_url_until_n3d_restarts(
    tmp_path: Path, pgids: list[int]
) -> None:
    port, other_port = free_port(), free_port()
    sup = make(tmp_path, port)
    async with supervising(sup, pgids):
        first = await until(sup, S.RUNNING)
        (tmp_path / "reloaded").mkdir()
        reloaded = settings_for(tmp_path / "reloaded", other_port,
                                server={"mode": "managed", "start_timeout": 5})
        plan = plan_reload(sup.settings, reloaded)
        assert plan.needs_restart == ("ollama.base_url",)
        sup.apply_settings(plan.effective)
        assert sup.settings.server.start_timeout_s == 5  # the rest applies at once
        restarted = await sup.restart()
        assert restarted.state is S.RUNNING and restarted.pid != first.pid
        assert answers(port) and not answers(other_port)
        assert restarted.base_url == f"http://127.0.0.1:{port}"
        # A new mode waits for the restart of n3d too: commands still work.
        (tmp_path / "external").mkdir()
        external = settings_for(tmp_path / "external", other_port, server={"mode": "external"})
        plan = plan_reload(sup.settings, external)
        assert plan.needs_restart == ("ollama.base_url", "server.mode")
        sup.apply_settings(plan.effective)
        assert (await sup.restart()).state is S.RUNNING and answers(port)


@pytest.mark.slow
async def test_resources_are_measured_off_the_event_loop(
    tmp_path: Path, pgids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    callers: list[int] = []
    measure = OllamaProcess.resources

    def recording(self: OllamaProcess) -> Resources:
        callers.append(threading.get_ident())
        return measure(self)

    monkeypatch.setattr(OllamaProcess, "resources", recording)
    sup = make(tmp_path, free_port())
    assert await sup.resources_async() == Resources(0, 0.0, 0)  # no child yet
    async with supervising(sup, pgids):
        await until(sup, S.RUNNING)
        await eventually(lambda: callers)  # the health loop's rss gauge
        usage = await sup.resources_async()  # what `status` should use
        assert usage.processes == 1 and usage.rss_bytes > 0
        assert len(callers) >= 2 and loop_thread not in callers


@pytest.mark.slow
@pytest.mark.timeout(30, method="thread")
@pytest.mark.usefixtures("wait_never_returns")
async def test_a_server_that_never_exits_after_sigkill_does_not_hold_the_stop(
    tmp_path: Path, pgids: list[int], json_logs: JsonLogs
) -> None:
    port = free_port()
    settings = settings_for(tmp_path, port, server={"mode": "managed", "stop_timeout": 0.5})
    sleeper = (sys.executable, "-c", "import time; time.sleep(60)")
    home = tmp_path / "home"
    sup = supervisor_for(settings, command=sleeper, runtime_dir=home / "run",
                         environ=sim_env(home, port))
    pid_file = home / "run" / "ollama.pid"
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        child = await eventually(lambda: sup.process)
        pgids.append(child.pgid)
        # Bounded by stop_timeout + 2 × VERIFY_S (4.5 s); the deadline is generous so that
        # a busy machine cannot break it, and far below forever.
        with anyio.fail_after(0.5 + 2 * VERIFY_S + 20):
            stopped = await sup.shutdown()
        tg.cancel_scope.cancel()
    assert stopped.state is S.STOPPED and stopped.pid is None
    assert stopped.last_exit == "did not exit after SIGKILL (abandoned)"
    unkillable = [e for e in json_logs.events() if e["event"] == "ollama.unkillable"]
    assert len(unkillable) == 1 and unkillable[0]["pid"] == child.pid
    assert unkillable[0]["level"] == "error"
    assert pid_file.exists()  # the next n3d checks it: stops it, or drops a stale file
