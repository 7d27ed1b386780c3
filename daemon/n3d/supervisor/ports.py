"""Where the server listens, and who already holds that port.

``OLLAMA_HOST`` for the child is ``host:port`` of the base URL (DESIGN.md: "When
n3d starts `ollama serve` itself it passes `OLLAMA_HOST=host:port`"). When the
port is taken, psutil says by whom, so the error can name the pid and program.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import psutil

from n3d.ollama.host import format_hostport

__all__ = ["Endpoint", "endpoint_of", "port_holder"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The host and port of a base URL."""

    host: str
    port: int

    @property
    def hostport(self) -> str:
        """``host:port`` as Go writes it (IPv6 in brackets): the child's OLLAMA_HOST."""
        return format_hostport(self.host, self.port)


def endpoint_of(base_url: str) -> Endpoint:
    """Host and port of ``base_url``; the port defaults by scheme (80/443)."""
    url = urlsplit(base_url)
    default = 443 if url.scheme == "https" else 80
    return Endpoint(url.hostname or "127.0.0.1", url.port or default)


async def _accepts(endpoint: Endpoint, timeout_s: float) -> bool:
    with anyio.move_on_after(timeout_s):
        try:
            stream = await anyio.connect_tcp(endpoint.host, endpoint.port)
        except OSError:
            return False
        await stream.aclose()
        return True
    return True  # a connect that neither succeeds nor fails: something is there


def _listener_of(port: int) -> str:
    """``pid N (name)`` of the process listening on ``port``, as far as we may see."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return "an unknown process (its owner is not visible to n3d)"
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return "a process of another user (pid not visible)"
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                name = "?"
            return f"pid {conn.pid} ({name})"
    return "an unknown process"


async def port_holder(endpoint: Endpoint, *, timeout_s: float = 0.5) -> str | None:
    """None when nothing listens at ``endpoint``; else who holds it (``pid N (name)``)."""
    if not await _accepts(endpoint, timeout_s):
        return None
    return await anyio.to_thread.run_sync(_listener_of, endpoint.port)
