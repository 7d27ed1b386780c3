"""The fault drill's engine: a real `n3d run --simulate` under client load while faults hit it.

``bench/drills.py`` is the runnable script; this package is what it runs, and what
``tests/drills`` runs with ``short=True``. :func:`run_drill` (in :mod:`.schedule`)
returns a :class:`DrillResult` (:mod:`.records`) that :func:`render` (:mod:`.report`)
prints. Between them: :mod:`.bounds` (the numbers invariants are judged by),
:mod:`.drill` (the shared state and recovery waits), :mod:`.load` (the client
threads), :mod:`.tally` (request accounting), :mod:`.rawconn` (a bare NDJSON client),
:mod:`.faults` (the injectors by kind), :mod:`.checks` (the invariants), :mod:`.streams`
(clients generating through n3d's proxy, with ``proxy_clients``) and :mod:`.isolation`
(the per-server invariants, with ``servers`` above 1).
"""

from __future__ import annotations

from n3d.testing.drill.records import DrillResult
from n3d.testing.drill.report import render
from n3d.testing.drill.schedule import run_drill

__all__ = ["DrillResult", "render", "run_drill"]
