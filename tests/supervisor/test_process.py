"""The child process with real processes: its own group, drained pipes, exit, stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import psutil
import pytest

from n3d.supervisor.groups import VERIFY_S, descendant_pids
from n3d.supervisor.output import OutputLimiter
from n3d.supervisor.process import ExitStatus, group_members, kill_group
from n3d.supervisor.spawn import SpawnFailed, child_environment, open_ollama

from .helpers import JsonLogs, eventually


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


# A fake serve that ignores SIGTERM and starts two "runners" in its group.
STUBBORN = py(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for _ in range(2):
        subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.slow
async def test_child_runs_in_its_own_process_group(pgids: list[int]) -> None:
    async with open_ollama(py("import time; time.sleep(30)"), os.environ, stop_timeout_s=2) as p:
        pgids.append(p.pgid)
        assert os.getpgid(p.pid) == p.pid == p.pgid
        assert os.getpgid(p.pid) != os.getpgid(0)
        assert os.getsid(p.pid) == p.pid
        assert p.create_time == psutil.Process(p.pid).create_time()
    assert p.exit_status is not None and p.exit_status.signal_name == "SIGTERM"


@pytest.mark.slow
async def test_a_signal_to_a_serve_that_just_died_leaves_its_reaping_to_the_exit_watcher(
    pgids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # stop() sends SIGTERM, then SIGCONT: serve may die in between. The exit watcher
    # (asyncio's waitpid thread) is held here until the SIGCONT is sent, as a loaded
    # machine may hold it; a signal that reaps on its way (Popen.send_signal polls)
    # would leave it no child, and the exit would read "exit code 255".
    gate, held = threading.Event(), threading.Event()
    real_waitpid = os.waitpid

    def waitpid(pid: int, options: int) -> tuple[int, int]:
        if options == 0 and threading.current_thread().name.startswith("asyncio-waitpid"):
            held.set()
            gate.wait(30)
        return real_waitpid(pid, options)

    monkeypatch.setattr(os, "waitpid", waitpid)
    async with open_ollama(py("import time; time.sleep(30)"), os.environ, stop_timeout_s=2) as p:
        pgids.append(p.pgid)
        try:
            if not await anyio.to_thread.run_sync(held.wait, 10):
                pytest.skip("this asyncio reaps children without a waitpid thread")
            os.kill(p.pid, signal.SIGTERM)
            await eventually(lambda: psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE)
            p.send_signal(signal.SIGCONT)
        finally:
            gate.set()
        status = await p.wait()
    assert status.signal_name == "SIGTERM", status


@pytest.mark.slow
async def test_output_is_drained_continuously_and_logged_as_ollama(
    json_logs: JsonLogs, pgids: list[int]
) -> None:
    # 400 KiB on each stream: far more than a pipe holds, so an undrained child blocks.
    code = """
        import sys
        for i in range(4000):
            sys.stdout.write("[GIN] line %d %s\\n" % (i, "x" * 90))
            sys.stderr.write('time=now level=WARN source=x.go:1 msg="w %d"\\n' % i)
        sys.exit(3)
    """
    unlimited = OutputLimiter(burst=10**9)  # this test counts lines; the limit has its own
    async with open_ollama(py(code), os.environ, stop_timeout_s=2, output=unlimited) as p:
        pgids.append(p.pgid)
        with anyio.fail_after(20):
            status = await p.wait()
    assert status == ExitStatus(3) and status.describe() == "exit code 3"
    lines = [e for e in json_logs.events() if e["event"] == "ollama.output"]
    assert all(e["logger"] == "ollama" for e in lines)
    assert sum(e["stream"] == "stdout" for e in lines) == 4000
    warnings = [e for e in lines if e["stream"] == "stderr"]
    assert len(warnings) == 4000 and all(e["level"] == "warning" for e in warnings)


@contextmanager
def loop_clock_stopped(watchdog_s: float = 30) -> Iterator[None]:
    """While inside, the event loop's clock stands still: no timer, sleep or poll fires,
    so only an event (a child's exit, I/O) can end a wait. A thread on the real clock
    cancels the block after ``watchdog_s``, which fails the test instead of hanging it.
    """
    loop = asyncio.get_running_loop()
    stopped = loop.time()
    scope = anyio.CancelScope()
    watchdog = threading.Timer(watchdog_s, loop.call_soon_threadsafe, (scope.cancel,))
    loop.time = lambda: stopped  # type: ignore[method-assign]
    watchdog.start()
    try:
        with scope:
            yield
    finally:
        watchdog.cancel()
        del loop.time  # the loop's own method again
    assert not scope.cancel_called, f"waited {watchdog_s} s: it needs a timer to end"


@pytest.mark.slow
async def test_a_crash_is_seen_at_once_not_by_polling(pgids: list[int]) -> None:
    async with open_ollama(py("import time; time.sleep(30)"), os.environ, stop_timeout_s=2) as p:
        pgids.append(p.pgid)
        await anyio.sleep(0.2)
        with loop_clock_stopped():  # so only an event can end the wait, never a timer
            os.kill(p.pid, signal.SIGKILL)
            status = await p.wait()
    assert status.describe() == "signal SIGKILL"


@pytest.mark.slow
async def test_sigterm_is_escalated_to_sigkill_of_the_whole_group(pgids: list[int]) -> None:
    async with open_ollama(STUBBORN, os.environ, stop_timeout_s=0.5) as p:
        pgids.append(p.pgid)
        await eventually(lambda: len(group_members(p.pgid)) >= 3)
        with anyio.fail_after(30):  # a deadline, not a measurement: bounded, not hung
            report = await p.stop(0.5)
    assert report.killed and report.survivors == 0
    assert report.exit is not None and report.exit.signal_name == "SIGKILL"
    assert report.duration_s >= 0.5  # SIGTERM had its stop timeout first
    assert group_members(p.pgid) == []


@pytest.mark.slow
async def test_runners_left_by_a_crashed_serve_are_killed(pgids: list[int]) -> None:
    code = """
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        time.sleep(0.3)
        sys.exit(1)
    """
    async with open_ollama(py(code), os.environ, stop_timeout_s=1) as p:
        pgids.append(p.pgid)
        with anyio.fail_after(10):
            await p.wait()
        assert len(group_members(p.pgid)) == 1  # the orphaned "runner"
        report = await p.stop(1)
    assert not report.killed and report.survivors == 0
    assert group_members(p.pgid) == []


@pytest.mark.slow
async def test_stop_is_idempotent_and_concurrent_callers_share_it(pgids: list[int]) -> None:
    async with open_ollama(py("import time; time.sleep(30)"), os.environ, stop_timeout_s=2) as p:
        pgids.append(p.pgid)
        reports = []

        async def stop() -> None:
            reports.append(await p.stop(2))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(stop)
    assert len({id(r) for r in reports}) == 1


@pytest.mark.slow
async def test_environment_is_scrubbed_and_ollama_host_set(tmp_path: Path) -> None:
    base = {
        "PATH": os.environ["PATH"],
        "NOTIFY_SOCKET": "/x",
        "WATCHDOG_USEC": "1",
        "WATCHDOG_PID": "1",
        "LISTEN_FDS": "1",
        "LISTEN_PID": "1",
        "OLLAMA_HOST": "bad",
    }
    env = child_environment(
        base, ollama_host="127.0.0.1:5555", extra={"OLLAMA_DEBUG": "1", "OLLAMA_HOST": "ignored"}
    )
    out = tmp_path / "env.json"
    code = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    async with open_ollama(py(code), env, stop_timeout_s=1) as p:
        await p.wait()
    seen = json.loads(out.read_text())
    assert seen["OLLAMA_HOST"] == "127.0.0.1:5555" and seen["OLLAMA_DEBUG"] == "1"
    assert not any(k.startswith(("NOTIFY_", "WATCHDOG_", "LISTEN_")) for k in seen)


async def test_a_missing_executable_is_ollama_not_installed() -> None:
    with pytest.raises(SpawnFailed, match="Ollama executable not found: .*no-such-ollama") as e:
        async with open_ollama(
            ["/nonexistent/no-such-ollama", "serve"], os.environ, stop_timeout_s=1
        ):
            pass
    assert not e.value.failure.retryable and e.value.failure.errno_name == "ENOENT"


@pytest.mark.slow
async def test_resources_cover_serve_and_runners(pgids: list[int]) -> None:
    async with open_ollama(STUBBORN, os.environ, stop_timeout_s=0.2) as p:
        pgids.append(p.pgid)
        res = await eventually(lambda: (r := p.resources()).processes >= 3 and r)
        assert res.rss_bytes > 3 * 1024 * 1024 and res.cpu_percent >= 0.0


async def test_kill_group_of_an_empty_group_returns_at_once() -> None:
    with loop_clock_stopped():  # it does not wait out VERIFY_S, or any timer
        assert await kill_group(2**22 + 12345) == 0


@pytest.mark.slow
@pytest.mark.timeout(30, method="thread")
@pytest.mark.usefixtures("wait_never_returns")
async def test_a_serve_that_never_exits_after_sigkill_is_abandoned_in_bounded_time(
    json_logs: JsonLogs, pgids: list[int]
) -> None:
    # The stop is bounded by stop_timeout + 2 × VERIFY_S (4.5 s); the deadline is generous
    # so that a busy machine cannot break it, and far below forever.
    with anyio.fail_after(0.5 + 2 * VERIFY_S + 20):
        async with open_ollama(
            py("import time; time.sleep(30)"), os.environ, stop_timeout_s=0.5
        ) as p:
            pgids.append(p.pgid)
    assert p.unkillable and p.exit_status is None and not p.exited.is_set()
    assert p.stop_report is not None and p.stop_report.killed
    events = [e for e in json_logs.events() if e["event"] == "ollama.unkillable"]
    assert [(e["level"], e["pid"]) for e in events] == [("error", p.pid)]


def test_descendant_pids_walk_the_whole_tree_from_proc() -> None:
    # sh → (sh → sleep, sleep): grandchildren count too.
    parent = subprocess.Popen(
        ["sh", "-c", "sh -c 'sleep 30; :' & sleep 30 & wait"], start_new_session=True
    )
    try:
        if descendant_pids(parent.pid) is None:
            pytest.skip("this kernel has no /proc/PID/task/TID/children")
        deadline = time.monotonic() + 10
        while True:  # until both views agree on the whole tree (it is still forking)
            walked = psutil.Process(parent.pid).children(recursive=True)
            expected = {p.pid for p in walked}
            found = descendant_pids(parent.pid)
            if len(expected) == 3 and found is not None and set(found) == expected:
                break
            assert time.monotonic() < deadline, (expected, found)
            time.sleep(0.02)
        assert descendant_pids(2**22 + 12345) == []  # no such process: nothing
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
