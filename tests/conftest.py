"""Suite-wide fixtures: a clean environment and logging setup for every test, the anyio
backend, and short directories for Unix sockets.

Fixtures needed by one folder live in that folder's conftest.py; what more than one folder
needs lives here, once.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from n3d.metrics import REGISTRY

# Variables a developer's shell may carry that would change what n3d resolves.
_LEAKY_ENV = (
    "OLLAMA_HOST",
    "OLLAMA_MODELS",
    "OLLAMA_KEEP_ALIVE",
    "NAMEL3SS_OLLAMA_BASE_URL",
    "N3D_SOCKET",
    "N3D_CONFIG",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "NO_COLOR",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    REGISTRY.reset()
    yield
    structlog.reset_defaults()
    REGISTRY.reset()


@pytest.fixture
def anyio_backend() -> str:
    """n3d runs on anyio's asyncio backend (docs/index.md says why); tests do too."""
    return "asyncio"


@contextlib.contextmanager
def short_tempdir() -> Iterator[Path]:
    """A private directory directly under /tmp, removed afterwards with all it holds.

    A Unix socket's path (sun_path) holds at most 107 bytes, and pytest's ``tmp_path``
    can be longer than that on its own. For fixtures wider than one test (a module's
    daemon); a test takes the ``short_dir`` fixture.
    """
    path = Path(tempfile.mkdtemp(prefix="n3t-", dir="/tmp"))
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.chmod(0o700)  # a test may have locked its own directory to see the error
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh private directory with a path short enough for Unix sockets (mode 0700)."""
    with short_tempdir() as path:
        yield path
