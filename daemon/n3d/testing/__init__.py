"""Harnesses for running n3d and the simulator as real processes, shipped with the package.

Tests, benchmarks and the drill use the same code, and so can projects that build
on n3d (as structlog ships ``structlog.testing``). Never imported by the daemon.

- :mod:`~n3d.testing.daemon`: :class:`DaemonProcess`, a real ``n3d run --simulate``
  in its own short home, and :func:`wait_until`;
- :mod:`~n3d.testing.simulator`: :class:`~n3d.testing.simulator.SimulatorProcess`,
  a real ``ollama-sim serve``, and ``free_port``;
- :mod:`~n3d.testing.drill`: the fault drill's engine (faults, load, invariants,
  report), run compressed by the suite and at length by ``bench/drills.py``.
"""

from __future__ import annotations

from n3d.testing.daemon import DaemonProcess, wait_until

__all__ = ["DaemonProcess", "wait_until"]
