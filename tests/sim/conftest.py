"""Fixtures that run the Ollama simulator as a real subprocess on a free port.

- `start_sim(env=None, *, port=None, fast=True, ready=True)`: a factory; each call
  starts one simulator in its own session with a fresh OLLAMA_MODELS under tmp_path
  and returns an `n3d.testing.simulator.SimulatorProcess` (ready unless `ready=False`).
  Every process group it started is SIGKILLed at teardown.
- `sim`: one ready simulator with fast timings and no models.
- `sim_with_models`: one ready simulator with llama3.2 and nomic-embed-text installed.
- `client` / `client_models`: an `httpx.Client` on `sim` / `sim_with_models`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from n3d.testing.simulator import SimulatorProcess

StartSim = Callable[..., SimulatorProcess]


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[StartSim]:
    started: list[SimulatorProcess] = []

    def start(
        env: dict[str, str] | None = None,
        *,
        port: int | None = None,
        fast: bool = True,
        ready: bool = True,
        workdir: Path | None = None,
    ) -> SimulatorProcess:
        sim = SimulatorProcess(
            workdir or tmp_path / f"sim{len(started)}", env, port=port, fast=fast
        )
        started.append(sim)
        sim.start()
        return sim.wait_ready() if ready else sim

    yield start
    for sim in started:
        sim.kill_group()


@pytest.fixture
def sim(start_sim: StartSim) -> SimulatorProcess:
    return start_sim()


@pytest.fixture
def sim_with_models(start_sim: StartSim) -> SimulatorProcess:
    return start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2,nomic-embed-text"})


@pytest.fixture
def client(sim: SimulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=10.0) as c:
        yield c


@pytest.fixture
def client_models(sim_with_models: SimulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim_with_models.url, timeout=10.0) as c:
        yield c
