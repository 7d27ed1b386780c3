"""n3d SIGKILLed with four servers running: the next n3d leaves no orphan of any.

Each server warms a model, so each serve has a runner in its process group. After
SIGKILL of n3d every serve and runner lives on (as after a real crash) with its
pid file (``ollama.pid``, ``ollama-b.pid``...). The next n3d, same config, finds
each one through its pid file, stops it and starts its own: no process of the
old groups remains, each pid file names the new serve, and a clean stop removes
them all.
"""

from __future__ import annotations

import pytest

from n3d.supervisor.pidfile import read_pid_file
from n3d.testing import wait_until

from .conftest import MakeFleet, alive, group

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

NAMES = ["a", "b", "c", "d"]
PINNED = {"a": ["tinyllama"], "b": ["llama3.2"], "c": ["tinyllama"], "d": ["llama3.2"]}


def test_after_n3d_is_sigkilled_the_next_one_leaves_no_orphan_of_any_server(
    fleet: MakeFleet,
) -> None:
    killed = fleet(NAMES, pinned=PINNED, models=["tinyllama", "llama3.2"])

    def every_serve_has_a_runner() -> dict[str, set[int]] | None:
        groups = {name: group(entry["pid"]) for name, entry in killed.servers().items()}
        return groups if all(len(members) >= 2 for members in groups.values()) else None

    old_groups = wait_until(every_serve_has_a_runner, 30, "a runner under every serve")
    serves = {name: entry["pid"] for name, entry in killed.servers().items()}
    killed.kill()
    # What was left behind, as after a real SIGKILL: every serve, and the runners
    # still alive (one may have ended meanwhile: an unload, or a runner repair).
    old = {pid for pid in set().union(*old_groups.values()) if alive(pid)}
    assert all(alive(pid) for pid in serves.values())
    assert len(old) > len(serves)  # runners among them
    for name in NAMES:
        record = read_pid_file(killed.pid_file(name))
        assert record is not None and record.pid == serves[name], name

    after = fleet(
        NAMES, home=killed.home, name="n3d2", ports=killed.ports, pinned=PINNED, start=False
    )
    after.start().wait_socket(30)
    fresh = after.wait_servers("running", 60)
    left = sorted(pid for pid in old if alive(pid))
    assert left == [], f"orphans left: {left}\n{after.describe()}"
    assert all(fresh[name]["pid"] not in old for name in NAMES)
    found = {e["pid"] for e in after.events("orphan.found")}
    assert found == set(serves.values()), (found, serves)
    for name in NAMES:
        record = read_pid_file(after.pid_file(name))
        assert record is not None and record.pid == fresh[name]["pid"], name
    new = {name: fresh[name]["pid"] for name in NAMES}
    assert after.stop() == 0
    assert all(not alive(pid) for pid in new.values())
    for name in NAMES:
        assert not after.pid_file(name).exists(), name
