"""Fixtures for the model machinery: settings, a simulator subprocess, a running Models.

- `make_settings(base_url, **changes)`: default Settings with `[ollama]` and `[warm]`
  fields replaced (`warm_models`, `warm_keep_alive` for the warm section).
- `start_sim(env=None, *, port=None, workdir=None)`: a ready `SimulatorProcess` whose
  request log is `workdir/requests.jsonl` (`sim.request_log()` reads it); every one
  is killed at teardown.

Helpers (`running`, `wait_until`, `Events`, `count_requests`) are in models_support.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from n3d.config import Settings, load_settings
from n3d.ollama.duration import parse_keep_alive
from n3d.testing.simulator import SimulatorProcess

from .models_support import MakeSettings, StartSim


@pytest.fixture
def make_settings(tmp_path: Path) -> MakeSettings:
    home = tmp_path / "home"
    base = load_settings(env={"HOME": str(home), "XDG_CONFIG_HOME": str(home / "cfg")})

    def make(
        base_url: str,
        *,
        warm_models: tuple[str, ...] = (),
        warm_keep_alive: str | float = -1,
        **ollama: Any,
    ) -> Settings:
        o = dataclasses.replace(base.ollama, base_url=base_url, **ollama)
        w = dataclasses.replace(
            base.warm,
            models=warm_models,
            keep_alive=warm_keep_alive,
            keep_alive_s=parse_keep_alive(warm_keep_alive) or 0.0,
        )
        return dataclasses.replace(base, ollama=o, warm=w)

    return make


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[StartSim]:
    started: list[SimulatorProcess] = []

    def start(
        env: dict[str, str] | None = None, *, port: int | None = None, workdir: Path | None = None
    ) -> SimulatorProcess:
        where = workdir or tmp_path / f"sim{len(started)}"
        full = {"OLLAMA_SIM_REQUEST_LOG": str(where / "requests.jsonl"), **(env or {})}
        sim = SimulatorProcess(where, full, port=port)
        started.append(sim)
        sim.start()
        return sim.wait_ready()

    yield start
    for sim in started:
        sim.kill_group()
