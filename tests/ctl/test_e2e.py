"""The installed `n3ctl` against a real `n3d run --simulate`: every command, human and --json.

One daemon serves the whole module (start-up costs seconds); the tests run in
file order and the later ones change the server's state on purpose (stop,
start, restart). A daemon that does not open its control socket fails the module.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from n3d.testing import DaemonProcess

from ..conftest import short_tempdir
from .conftest import N3CTL, Run, run_ctl

pytestmark = pytest.mark.slow

MODEL = "llama3.2"  # installed at start by the simulator
PULLED = "qwen2.5:0.5b"


class RealDaemon(DaemonProcess):
    """n3d with the simulator's llama3.2 installed, and the installed `n3ctl` pointed at it."""

    def __init__(self, home: Path) -> None:
        super().__init__(
            home,
            config={
                "server": {"start_timeout": 20},
                "restart": {"backoff_initial": 0.1, "backoff_max": 1.0},
            },
            OLLAMA_SIM_MODELS_PRELOAD=MODEL,
            OLLAMA_SIM_PULL_SECONDS="0.6",
        )
        self.env.pop("NO_COLOR", None)
        self.sock = self.socket

    def ctl(self, *argv: str, timeout: float = 60) -> Run:
        return run_ctl(*argv, env=self.env, timeout=timeout)

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        def sigint_default() -> None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)

        return subprocess.Popen(
            [str(N3CTL), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            preexec_fn=sigint_default,
        )

    def wait_status(self, code: int, within_s: float = 30) -> Run:
        deadline = time.monotonic() + within_s
        while True:
            result = self.ctl("status")
            if result.code == code or time.monotonic() > deadline:
                return result
            time.sleep(0.2)


def real_daemon() -> Iterator[RealDaemon]:
    """A running daemon for one module's tests, killed (with its groups) afterwards."""
    with short_tempdir() as home:
        daemon = RealDaemon(home)
        try:
            daemon.start().wait_socket(20)
            ready = daemon.wait_status(0)
            assert ready.code == 0, ready.out + ready.err
            yield daemon
        finally:
            daemon.cleanup()


@pytest.fixture(scope="module")
def n3d() -> Iterator[RealDaemon]:
    yield from real_daemon()


def both(n3d: RealDaemon, *argv: str, code: int = 0) -> tuple[Run, Any]:
    """Run ``argv`` in human and --json form; both must exit ``code``; returns (human, doc)."""
    human = n3d.ctl(*argv)
    assert human.code == code, f"{argv}: {human.err}"
    machine = n3d.ctl("--json", *argv)
    assert machine.code == code, f"--json {argv}: {machine.err}"
    return human, json.loads(machine.out) if machine.out else None


def test_status(n3d: RealDaemon) -> None:
    human, doc = both(n3d, "status")
    assert human.out.startswith("● ollama")
    assert "     Active: running (managed) since " in human.out
    assert set(doc) >= {"daemon", "server", "health", "resources", "models"}
    assert doc["server"]["state"] == "running"
    assert doc["daemon"]["socket"] == str(n3d.sock)


def test_health(n3d: RealDaemon) -> None:
    human, doc = both(n3d, "health")
    assert human.out.startswith("ok: ")
    assert doc["ok"] is True
    _, forced = both(n3d, "health", "--force")
    assert forced["ok"] is True


def test_version(n3d: RealDaemon) -> None:
    human, doc = both(n3d, "version")
    assert human.out.splitlines()[1].startswith("n3d 0.1.0 (pid ")
    assert doc["n3d"]["version"] == "0.1.0"


def test_validate(n3d: RealDaemon) -> None:
    human, doc = both(n3d, "validate", MODEL)
    assert human.out.startswith("valid: ") and doc["valid"] is True
    assert n3d.ctl("validate", "no such/name!").code == 1


def test_models(n3d: RealDaemon) -> None:
    human, doc = both(n3d, "models")
    assert human.out.startswith("NAME ")
    assert MODEL in human.out
    assert any(m["name"].startswith(MODEL) for m in doc["models"])


def test_pull_human_and_json_lines(n3d: RealDaemon) -> None:
    human = n3d.ctl("pull", PULLED)
    assert human.code == 0, human.err
    assert human.out.startswith(f"pulled {PULLED}")
    assert f"Pulling {PULLED}" in human.err  # the begin title; steps may be coalesced
    assert "✓ " in human.err and human.err.endswith("success\n")
    n3d.ctl("rm", PULLED)
    machine = n3d.ctl("--json", "pull", PULLED)
    assert machine.code == 0, machine.err
    lines = [json.loads(line) for line in machine.out.splitlines()]
    assert lines[-1]["status"] == "success"
    assert any(line.get("kind") == "report" for line in lines[:-1])


def test_ensure(n3d: RealDaemon) -> None:
    human, doc = both(n3d, "ensure", PULLED)
    assert human.out.startswith(f"{PULLED}: available") and doc["available"] is True
    assert n3d.ctl("ensure", "not-a-model-anywhere:1b").code == 1


def test_loaded_models_and_warm(n3d: RealDaemon) -> None:
    human, doc = both(n3d, "warm", "add", MODEL)
    assert any(m["name"].startswith(MODEL) for m in doc["models"])
    human, doc = both(n3d, "warm")
    assert MODEL in human.out
    both(n3d, "warm", "list")
    human, doc = both(n3d, "models", "--loaded")
    assert human.out.startswith("NAME ")
    assert isinstance(doc["models"], list)
    both(n3d, "warm", "rm", MODEL)


def test_rm_and_its_error(n3d: RealDaemon) -> None:
    human = n3d.ctl("rm", PULLED)
    assert (human.code, human.out) == (0, f"deleted {PULLED}\n")
    again = n3d.ctl("rm", PULLED)
    assert again.code == 1
    assert "\n\nSuggestion: " in again.err and again.out == ""


def test_metrics(n3d: RealDaemon) -> None:
    human, doc = both(n3d, "metrics")
    assert human.out.startswith("NAME ")
    assert set(doc) >= {"counters", "gauges", "histograms"}
    prom = n3d.ctl("metrics", "--prometheus")
    assert prom.code == 0
    assert "# TYPE n3d_rpc_duration_seconds histogram" in prom.out  # rendered by the daemon


def test_events_then_stop_start_restart(n3d: RealDaemon) -> None:
    follower = n3d.popen("--json", "events", "--topic", "server.state")
    human_follower = n3d.popen("events")
    for proc in (follower, human_follower):  # subscribed before anything happens
        assert proc.stderr is not None
        assert "following" in proc.stderr.readline()

    human, doc = both(n3d, "stop")  # the second stop finds it stopped already
    assert human.out.startswith("ollama: ") and doc["state"] == "stopped"
    stopped = n3d.wait_status(3)
    assert stopped.code == 3 and "stopped" in stopped.out
    assert n3d.ctl("--json", "status").code == 3

    human, doc = both(n3d, "start")
    assert n3d.wait_status(0).code == 0
    human, doc = both(n3d, "restart")
    assert n3d.wait_status(0).code == 0

    outs = []
    for proc in (follower, human_follower):
        # Read until the restart's final "to running" (the second one seen), then stop.
        assert proc.stdout is not None
        lines: list[str] = []
        while sum("to=running" in x or '"to": "running"' in x for x in lines) < 2:
            line = proc.stdout.readline()
            assert line, "the follower ended early"
            lines.append(line)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        outs.append("".join(lines) + rest)
    events = [json.loads(line) for line in outs[0].splitlines()]
    assert {e["topic"] for e in events} == {"server.state"}
    assert "stopped" in {e.get("to") for e in events}
    assert " server.state " in outs[1]


def test_a_killed_daemon_is_unreachable(n3d: RealDaemon) -> None:
    """Last: kill n3d; its socket file may stay behind → 69 (missing or stale)."""
    n3d.kill()
    result = n3d.ctl("status")
    assert result.code == 69
    assert str(n3d.sock) in result.err
