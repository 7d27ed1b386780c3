"""Several simulators under one real n3d (:class:`n3d.testing.servers.FleetProcess`).

``fleet(["a", "b"], ...)`` starts n3d with one ``[[servers]]`` entry per name and
waits until every server is running (``start=False``: neither); every n3d made is
cleaned up (it and every process group it spawned) at the end. Helpers read
``/proc`` and ``ps`` the way a user would check a host.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from n3d.testing.servers import FleetProcess

MakeFleet = Callable[..., FleetProcess]


@pytest.fixture
def fleet(short_dir: Path) -> Iterator[MakeFleet]:
    made: list[FleetProcess] = []

    def make(
        names: list[str], *, start: bool = True, home: Path | None = None, **kw: Any
    ) -> FleetProcess:
        if home is None:  # else a second n3d in the home of a first one
            home = short_dir / f"f{len(made)}"
            home.mkdir(mode=0o700)
        d = FleetProcess(home, names, **kw)
        made.append(d)
        if start:
            d.start().wait_socket(30)
            d.wait_servers("running", 60)
        return d

    yield make
    for d in made:
        d.cleanup()


def environ(pid: int) -> dict[str, str]:
    """A process's environment as the kernel holds it (``/proc/PID/environ``)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {key.decode(): value.decode(errors="replace") for key, _, value in pairs}


def group(pgid: int) -> set[int]:
    """Live (not zombie) processes of process group ``pgid``: a serve and its runners."""
    table = subprocess.run(
        ["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True, check=True
    ).stdout
    found = set()
    for line in table.splitlines():
        pid, pg, stat = line.split()[:3]
        if int(pg) == pgid and not stat.startswith("Z"):
            found.add(int(pid))
    return found


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
