"""`status` reuses a fresh measurement of the server's resources instead of rescanning /proc.

Each scan reads every process on the machine, so a client polling `status` many
times a second paid a worker-thread hop and a full /proc walk per call
(bench/pull_load.py: ~1.3 ms of a 1.5 ms `status`). Real processes throughout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from n3d.state import ServerState
from n3d.supervisor import supervisor as supervisor_module

from .helpers import free_port, make, supervising, until

pytestmark = pytest.mark.slow


async def test_resources_are_reused_while_fresh_and_measured_again_after(
    tmp_path: Path, pgids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    sup = make(tmp_path, free_port())
    async with supervising(sup, pgids):
        await until(sup, ServerState.RUNNING)
        first = await sup.resources_async()
        assert first.processes == 1 and first.rss_bytes > 0
        again = [await sup.resources_async() for _ in range(20)]
        assert all(usage is first for usage in again)  # no new scan within the second

        monkeypatch.setattr(supervisor_module, "RESOURCES_MAX_AGE_S", 0.0)
        fresh = await sup.resources_async()
        assert fresh is not first and fresh.processes == 1
