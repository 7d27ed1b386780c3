"""Real clients nobody here wrote (the `ollama` Python and npm packages, the `openai`
Python package) against an Ollama API at a base URL.

Every test takes `base_url` and asserts only what the client sees, so the same test
body runs against each way of reaching the API listed in :data:`ROUTES`. Today that is
the simulator directly, and the same simulator supervised by a real `n3d run
--simulate` with `[proxy] listen`, the clients talking to the proxy: the issue asks for
results identical to talking to the simulator directly. A route
gets a fresh directory and serves one pytest session: the models below are installed
(`llama3.2`, `tinyllama`, `nomic-embed-text`); tests that pull or delete use other
models, so the order of tests does not matter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from n3d.testing import DaemonProcess
from n3d.testing.simulator import SimulatorProcess, free_port

PRELOAD = "llama3.2,tinyllama,nomic-embed-text"


@contextlib.contextmanager
def direct(workdir: Path) -> Iterator[str]:
    """The simulator itself, with fast timings."""
    sim = SimulatorProcess(workdir, {"OLLAMA_SIM_MODELS_PRELOAD": PRELOAD})
    try:
        yield sim.start().wait_ready().url
    finally:
        sim.kill_group()


@contextlib.contextmanager
def through_proxy(workdir: Path) -> Iterator[str]:
    """A real n3d supervising the simulator, the clients on its proxy listener."""
    listen = f"127.0.0.1:{free_port()}"
    daemon = DaemonProcess(
        workdir, config={"proxy": {"listen": listen}}, OLLAMA_SIM_MODELS_PRELOAD=PRELOAD
    )
    try:
        daemon.start().wait_ready()
        yield f"http://{listen}"
    finally:
        daemon.cleanup()


Route = Callable[[Path], AbstractContextManager[str]]
ROUTES: dict[str, Route] = {"direct": direct, "proxy": through_proxy}


@pytest.fixture(scope="session", params=list(ROUTES))
def base_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The base URL of an Ollama API (`http://127.0.0.1:PORT`), one per route."""
    with ROUTES[request.param](tmp_path_factory.mktemp(f"route-{request.param}")) as url:
        yield url
