"""A stopped (SIGSTOP) serve: failures are confirmed at the faster degraded cadence,
and SIGCONT lets it act on the SIGTERM at once instead of waiting for SIGKILL."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from n3d.state import ServerState
from n3d.supervisor.health import HealthResult
from n3d.supervisor.watch import recheck_interval

from .helpers import SIM, free_port, settings_for, sim_env, supervising, supervisor_for, until

S = ServerState


def test_recheck_interval_is_two_timeouts_at_least_a_second_never_above_the_interval() -> None:
    assert recheck_interval(30, 5) == 10
    assert recheck_interval(30, 0.1) == 1.0
    assert recheck_interval(0.3, 0.25) == 0.3
    assert recheck_interval(8, 5) == 8


@pytest.mark.slow
async def test_a_stopped_serve_is_confirmed_hung_sooner_and_exits_on_its_sigterm(
    tmp_path: Path, pgids: list[int]
) -> None:
    port = free_port()
    settings = settings_for(
        tmp_path, port, ollama={"health_check_interval": 2},
        server={"mode": "managed", "health_timeout": 0.25, "failures_before_restart": 3,
                "stop_timeout": 10},
    )
    sup = supervisor_for(settings, command=SIM, runtime_dir=tmp_path / "home" / "run",
                         environ=sim_env(tmp_path / "home", port))
    results: list[HealthResult] = []
    stopped = anyio.Event()

    def seen(result: HealthResult) -> None:
        results.append(result)
        if stopped.is_set() and not result.ok:  # from then on a minute, as after a reload
            sup.health.interval_s = 60

    sup.health.listeners.append(seen)
    async with supervising(sup, pgids):
        first = await until(sup, S.RUNNING)
        assert first.pid is not None
        os.kill(first.pid, signal.SIGSTOP)
        stopped.set()
        # Confirmed every recheck_interval(60, 0.25) = 1 s: at the interval it would
        # take two minutes, far beyond this deadline however busy the machine is.
        await until(sup, S.STOPPING, within_s=30)
        failed = [r.at for r in results if not r.ok][-3:]
        gaps = [b - a for a, b in zip(failed, failed[1:], strict=False)]
        assert len(gaps) == 2 and all(gap < 30 for gap in gaps), gaps
        snap = await until(sup, S.BACKOFF, S.STARTING, S.RUNNING, within_s=10)
        # SIGTERM then SIGCONT: serve exited on its own, long before stop_timeout's SIGKILL.
        assert snap.last_exit == "exit code 0", snap.last_exit
