"""The seed's `OllamaEditorTools`, answered by n3d when it runs and by Ollama when not.

Editors and tools written against the seed keep working unchanged: same method
names, same return shapes. With a daemon on the socket (``N3D_SOCKET`` or the
default path) the answers come from it, so they share its cache and health
throttle; with no daemon, they ask Ollama directly, as the seed did, at
``base_url`` or the URL n3d's config resolves (config file, then
``NAMEL3SS_OLLAMA_BASE_URL``, then ``OLLAMA_HOST``, then the default).

Differences from the seed, on purpose: model names are validated with Ollama's
real grammar, and the capabilities reflect what current Ollama supports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from n3d.client import DaemonTimeout, DaemonUnreachable, RpcError
from n3d.client.aio import connect
from n3d.errors import N3dError, OllamaError
from n3d.ollama.names import validate
from n3d.redact import redact_url

__all__ = ["OllamaEditorTools"]

_UP_STATES = {"running", "degraded", "external"}
_FALLBACK_DEFAULT_MODEL = "llama3:8b"


def _configured_base_url() -> str:
    from n3d.config import DEFAULT_BASE_URL, load_settings

    try:
        return load_settings().ollama.base_url
    except N3dError:
        return DEFAULT_BASE_URL


_DAEMON_TIMEOUT_S = 5.0


async def _ask_daemon(method: str, params: dict[str, Any] | None, socket: Path | str | None) -> Any:
    """One call to the daemon; a daemon that does not answer in time counts as absent."""
    try:
        with anyio.fail_after(_DAEMON_TIMEOUT_S):
            async with connect(socket, timeout_s=_DAEMON_TIMEOUT_S) as conn:
                return await conn.call(method, params)
    except TimeoutError as exc:
        raise DaemonTimeout(str(socket or ""), "no answer in time") from exc


class OllamaEditorTools:
    """Status, models, defaults, capabilities and name checks for editor integrations.

    ``socket`` (for tests and several daemons) overrides the daemon's socket path.
    """

    def __init__(self, socket: Path | str | None = None) -> None:
        self.socket = socket

    async def check_status(self, base_url: str | None = None) -> dict[str, Any]:
        """``{reachable, base_url, models_count, models}`` or ``{reachable: False, error, ...}``."""
        if base_url is None:
            try:
                status = await _ask_daemon("status", None, self.socket)
                url = status["server"]["base_url"]
                if status["server"]["state"] not in _UP_STATES:
                    return {
                        "reachable": False,
                        "base_url": url,
                        "error": f"Ollama server is {status['server']['state']}",
                        "suggestion": "Start it with: n3ctl start",
                        "daemon": True,
                    }
                listing = await _ask_daemon("models.list", None, self.socket)
                names = [m["name"] for m in listing["models"]]
                return {
                    "reachable": True,
                    "base_url": url,
                    "models_count": len(names),
                    "models": names,
                    "daemon": True,
                }
            except (DaemonUnreachable, RpcError):
                pass  # no daemon (or it cannot say): ask Ollama itself, as the seed did
        return await self._check_ollama(base_url or _configured_base_url())

    async def _check_ollama(self, url: str) -> dict[str, Any]:
        from n3d.ollama.client import OllamaClient

        try:
            async with OllamaClient(url, timeout_s=5.0) as client:
                models = await client.tags()
        except OllamaError as exc:
            return {
                "reachable": False,
                "base_url": redact_url(url),
                "error": exc.message,
                "suggestion": exc.suggestion or "Ensure Ollama is installed and running",
                "daemon": False,
            }
        return {
            "reachable": True,
            "base_url": redact_url(url),
            "models_count": len(models),
            "models": [m.name for m in models],
            "daemon": False,
        }

    async def list_available_models(self, base_url: str | None = None) -> list[dict[str, Any]]:
        """``[{name, size, modified_at, digest}]`` for pickers; ``[]`` when nothing answers."""
        if base_url is None:
            try:
                listing = await _ask_daemon("models.list", None, self.socket)
                return [
                    {k: m.get(k) for k in ("name", "size", "modified_at", "digest")}
                    for m in listing["models"]
                ]
            except (DaemonUnreachable, RpcError):
                pass
        from n3d.ollama.client import OllamaClient

        try:
            async with OllamaClient(base_url or _configured_base_url(), timeout_s=10.0) as c:
                models = await c.tags()
        except OllamaError:
            return []
        return [
            {"name": m.name, "size": m.size, "modified_at": m.modified_at, "digest": m.digest}
            for m in models
        ]

    def get_default_model(self) -> str:
        """The daemon's (or the config's) `default_model`; `llama3:8b` as a last resort."""
        from n3d.client import Connection

        try:
            with Connection(self.socket, timeout=2.0) as conn:
                return str(conn.call("models.default")["model"])
        except (DaemonUnreachable, RpcError):
            pass
        from n3d.config import load_settings

        try:
            return load_settings().ollama.default_model
        except N3dError:
            return _FALLBACK_DEFAULT_MODEL

    @staticmethod
    def get_supported_capabilities() -> dict[str, bool]:
        """Feature flags for IDEs (the seed's keys; Ollama has embeddings and tools today).

        ``auto_pull`` is the config's `auto_pull_model`.
        """
        from n3d.config import load_settings

        try:
            auto_pull = load_settings().ollama.auto_pull_model
        except N3dError:
            auto_pull = False
        return {
            "chat": True,
            "completion": True,
            "streaming": True,
            "embeddings": True,
            "function_calling": True,  # model-dependent, as vision is
            "vision": True,
            "auto_pull": auto_pull,
            "local_deployment": True,
        }

    @staticmethod
    def validate_model_name(model_name: str) -> dict[str, Any]:
        """``{is_valid, message, normalized}`` by Ollama's own name grammar."""
        ok, normalized, message = validate(model_name)
        return {"is_valid": ok, "message": message, "normalized": normalized}
