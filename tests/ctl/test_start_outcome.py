"""`n3ctl start` and `restart` report the outcome of the start, against a real n3d.

A server that cannot start (``command = ["/bin/false"]``) ends in ``backoff`` or
``fatal``: both commands exit 1 and say why. A server that starts (the simulator)
exits 0 once it is ``running``, even when the start was already under way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from n3d.testing import DaemonProcess

from .conftest import Run, run_ctl

pytestmark = pytest.mark.slow

REASON = "exited during start (exit code 1)"


def _ctl(daemon: DaemonProcess, *argv: str) -> Run:
    return run_ctl(*argv, env=daemon.env, timeout=120)


def test_start_and_restart_of_a_server_that_cannot_start_exit_1_with_the_reason(
    short_dir: Path,
) -> None:
    daemon = DaemonProcess(
        short_dir, simulate=False, config={"server": {"command": ["/bin/false"]}}
    )
    try:
        daemon.start().wait_socket()
        for command in ("start", "restart"):
            human = _ctl(daemon, command)
            assert human.code == 1, human
            assert human.out in ("ollama: backoff\n", "ollama: fatal\n"), human
            assert f"n3ctl: ollama did not start: {REASON}; " in human.err
            machine = _ctl(daemon, "--json", command)
            assert machine.code == 1, machine
            document = json.loads(machine.out)
            assert document["state"] in ("backoff", "fatal")
            assert document["server"]["last_error"] == REASON
        # Once n3d has given up, `start` tries again, and says so when it fails again.
        daemon.wait_state("fatal", within_s=60)
        again = _ctl(daemon, "start")
        assert again.code == 1 and REASON in again.err, again
    finally:
        daemon.cleanup()


def test_start_and_restart_exit_0_once_the_simulator_runs(short_dir: Path) -> None:
    # The simulator answers only after 3 s: `start` finds a start under way.
    daemon = DaemonProcess(short_dir, OLLAMA_SIM_READY_DELAY="3")
    try:
        daemon.start().wait_socket()
        assert daemon.call("status")["server"]["state"] == "starting"
        started = _ctl(daemon, "start")
        assert (started.code, started.out) == (0, "ollama: running\n"), started
        assert daemon.call("status")["server"]["state"] == "running"
        restarted = _ctl(daemon, "--json", "restart")
        assert restarted.code == 0, restarted
        assert json.loads(restarted.out)["state"] == "running"
        stopped = _ctl(daemon, "stop")
        assert (stopped.code, stopped.out) == (0, "ollama: stopped\n"), stopped
        started = _ctl(daemon, "start")
        assert (started.code, started.out) == (0, "ollama: running\n"), started
    finally:
        daemon.cleanup()
