"""Each server on its own: two and four simulators under one real n3d.

- Every server reaches ``running`` on its own port, with its own pid file
  (``ollama.pid`` for the first, ``ollama-NAME.pid`` for the others).
- serve SIGKILLed: that server alone is restarted; the others keep their pid,
  state and restart count, and every ``server.state`` line logged meanwhile
  names the victim.
- With the proxy on, one server's inference hangs (the simulator's
  ``hang_inference``, through that server's own control file): liveness repairs
  it (runner, then serve) while 16 clients stream through the proxy to the
  others, and not one request fails.
"""

from __future__ import annotations

import functools
import os
import signal
from typing import Any

import anyio
import pytest

from n3d.supervisor.pidfile import read_pid_file
from n3d.testing import wait_until
from n3d.testing.inference import repairs
from n3d.testing.servers import FleetProcess
from n3d.testing.simulator import free_port

from ..proxy.load import Load
from .conftest import MakeFleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TWO, FOUR = ["a", "b"], ["a", "b", "c", "d"]


def _pids(servers: dict[str, Any]) -> dict[str, int]:
    return {name: entry["pid"] for name, entry in servers.items()}


@pytest.mark.parametrize(("names", "victim"), [(TWO, "a"), (FOUR, "c")])
def test_each_server_runs_and_a_sigkill_restarts_only_its_own(
    fleet: MakeFleet, names: list[str], victim: str
) -> None:
    d = fleet(names)
    before = d.wait_servers()
    assert list(before) == names  # in the config's order
    assert len(set(_pids(before).values())) == len(names)
    for name, entry in before.items():
        assert entry["base_url"] == d.url_of(name)
        assert entry["restarts"] == 0
        record = read_pid_file(d.pid_file(name))
        assert record is not None and record.pid == entry["pid"], name
    assert d.call("status")["server"]["pid"] == before[names[0]]["pid"]  # `server`: the first
    logged = len(d.events("server.state"))

    os.kill(before[victim]["pid"], signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        now = d.servers()
        entry = now[victim]
        fresh = entry["state"] == "running" and entry["pid"] not in (None, before[victim]["pid"])
        return now if fresh else None

    after = wait_until(restarted, 30, f"{victim} restarted")
    assert after[victim]["restarts"] == 1
    for name in names:
        if name != victim:
            assert after[name]["pid"] == before[name]["pid"], name
            assert after[name]["state"] == "running" and after[name]["restarts"] == 0, name
    moved = d.events("server.state")[logged:]
    assert moved and {e.get("server") for e in moved} == {victim}, moved
    record = read_pid_file(d.pid_file(victim))
    assert record is not None and record.pid == after[victim]["pid"]


def _hung_fleet(fleet: MakeFleet, names: list[str]) -> tuple[FleetProcess, str]:
    """``names[0]`` warms tinyllama, the others llama3.2; the proxy on; fast liveness."""
    listen = f"127.0.0.1:{free_port()}"
    config = {
        "proxy": {"listen": listen, "hold_timeout": 30, "drain_timeout": 10},
        "liveness": {"probe_interval": 2, "probe_timeout": 3},
        "server": {"failures_before_restart": 3},
    }
    pinned = {names[0]: ["tinyllama"], **{name: ["llama3.2"] for name in names[1:]}}
    d = fleet(
        names,
        config=config,
        pinned=pinned,
        models=["tinyllama", "llama3.2"],
        OLLAMA_SIM_TOKEN_SECONDS="0.01",
        OLLAMA_NUM_PARALLEL="16",
    )
    for name in names:
        wait_until(functools.partial(_warm, d, name), 30, f"{name} warm")
    return d, f"http://{listen}"


def _warm(d: FleetProcess, name: str) -> bool:
    rows = d.call("warm.list", {"server": name}, timeout=5)["models"]
    return bool(rows) and all(row.get("loaded") for row in rows)


@pytest.mark.parametrize("names", [TWO, FOUR])
async def test_a_hung_server_is_repaired_while_the_others_serve_every_request(
    fleet: MakeFleet, names: list[str]
) -> None:
    d, url = await anyio.to_thread.run_sync(_hung_fleet, fleet, names)
    hung, others = names[0], names[1:]
    before = d.servers()
    load = Load(url, model="llama3.2")
    done_at_fault = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(load.run)
        await anyio.sleep(1.0)
        done_at_fault = len(load.outcomes)
        d.set_control_of(hung, hang_inference=True)

        def serve_repaired() -> bool:
            return any(e["stage"] == "serve" and e.get("server") == hung for e in repairs(d))

        # A restart is what cures a real deadlock: lift the fault once n3d restarts serve.
        await anyio.to_thread.run_sync(lambda: wait_until(serve_repaired, 60, "a serve repair"))
        d.set_control_of(hung)

        def back() -> bool:
            entry = d.servers()[hung]
            return bool(entry["state"] == "running" and entry["pid"] != before[hung]["pid"])

        await anyio.to_thread.run_sync(lambda: wait_until(back, 30, f"{hung} running again"))
        done_at_repair = len(load.outcomes)
        await anyio.sleep(1.0)
        load.stop.set()
    counts = load.counts()
    served = {name: len(_load_hits(d, name)) for name in names}
    print(f"\n{len(names)} servers, {hung} hung and repaired: {dict(counts)}; served {served}")
    assert load.failures() == [], load.failures()[:3]
    assert counts["error_after_begin"] == 0
    assert done_at_repair - done_at_fault > 16, "the others kept answering during the repair"
    assert served[hung] == 0 and all(served[name] > 0 for name in others), served
    stages = [e["stage"] for e in repairs(d)]
    assert stages == ["runner", "serve"], d.describe()
    assert {e["server"] for e in repairs(d)} == {hung}
    after = d.servers()
    assert after[hung]["restarts"] == 1
    for name in others:
        assert after[name]["pid"] == before[name]["pid"], name
        assert after[name]["restarts"] == 0, name


def _load_hits(d: FleetProcess, name: str) -> list[dict[str, Any]]:
    """The load's generates (prompts ``client N request I``) a server answered."""
    return [
        entry
        for entry in d.requests_of(name, "/api/generate")
        if isinstance(entry.get("body"), dict)
        and str(entry["body"].get("prompt", "")).startswith("client ")
    ]
