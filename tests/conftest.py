"""Suite-wide fixtures: every test starts from a clean environment and logging setup."""

from __future__ import annotations

from collections.abc import Iterator

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
