"""A real n3d beside an "Ollama" whose answers never end: 1010, and n3d's memory stays
bounded while it lives on.

In `auto` or `external` mode any local user who binds Ollama's port first is the
server n3d talks to. This one answers `/` and `/api/version` like Ollama, and
`/api/tags`, `/api/ps` and `/api/pull` with bodies (and a line) that run until n3d
hangs up. Before the caps n3d read each whole: keep-warm's poll of `/api/ps` alone
raised its peak RSS past a gigabyte, and an endless answer would have grown it until
the kernel's OOM killer ended it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from n3d.client import RpcError
from n3d.testing import DaemonProcess, wait_until

from .hostile_http import (
    HostileServer,
    MiB,
    endless_body,
    endless_line,
    peak_rss,
    reset_peak,
    serving,
)

pytestmark = pytest.mark.slow

# Generous: a few answers read at once (the model-list refresh, keep-warm's poll, a
# pull) at their caps, plus the allocator's slack, measured near 240 MiB. Reading the
# 512 MiB answers whole, as n3d did, raised its peak by nearly 5 GiB.
BOUND = 512 * MiB


@pytest.fixture
def daemon_beside_endless_server(short_dir: Path) -> Iterator[tuple[DaemonProcess, HostileServer]]:
    home = short_dir
    d = DaemonProcess(home, config={"server": {"mode": "external"}})
    server = HostileServer(d.port)
    try:
        with serving(server):
            yield d, server
    finally:
        d.cleanup()


def test_endless_answers_from_a_hostile_server_are_1010_and_n3d_memory_stays_bounded(
    daemon_beside_endless_server: tuple[DaemonProcess, HostileServer],
) -> None:
    d, server = daemon_beside_endless_server
    d.start().wait_ready("external")
    reset_peak(d.pid)
    before = peak_rss(d.pid)
    server.routes.update(
        {"/api/tags": endless_body(), "/api/ps": endless_body(), "/api/pull": endless_line()}
    )
    polls = server.hits.count("/api/ps")

    def polled_thrice_more() -> bool:
        assert d.proc is not None and d.proc.poll() is None, d.describe()
        return server.hits.count("/api/ps") >= polls + 3

    wait_until(polled_thrice_more, 60, "keep-warm polls")  # at least every 10 s
    errors: dict[str, RpcError] = {}
    for method, params in (("models.list", {"refresh": True}), ("models.pull", {"model": "m"})):
        with pytest.raises(RpcError) as info:
            d.call(method, params, timeout=60)
        errors[method] = info.value
    growth = peak_rss(d.pid) - before
    print(f"n3d peak RSS rose {growth / MiB:.0f} MiB")  # the figure, with -s
    assert growth < BOUND, f"n3d's peak RSS rose {growth / MiB:.0f} MiB"
    assert errors["models.list"].code == errors["models.pull"].code == 1010
    assert "the answer to /api/tags is larger than 64 MiB" in errors["models.list"].message
    assert "a line of /api/pull is longer than 16 MiB" in errors["models.pull"].message
    assert d.call("status")["server"]["state"] == "external"
    assert d.proc is not None and d.proc.poll() is None, d.describe()

    # One warning for the poisoned poll, not one per poll (paced: once a minute after).
    ps = [e for e in d.events("ollama.unusable_answer") if e["request"] == "GET /api/ps"]
    assert len([e for e in ps if "repeats" not in e]) == 1, ps
    assert len(ps) < server.hits.count("/api/ps") - polls
    assert "Traceback" not in d.stderr(), d.stderr()
    assert d.stop() == 0
