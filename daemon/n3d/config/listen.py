"""`[proxy] listen`: its check, and the rule that it may not be the server's own address.

The second rule needs the resolved base URL (which the environment may set), so
:func:`check_listen` runs after resolution, with the key's file and line for its error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

from n3d.config.checks import Invalid, text
from n3d.errors import ConfigError
from n3d.redact import redact_url

__all__ = ["check_listen", "listen_address"]


def listen_address(value: object) -> str:
    """`[proxy] listen`: "" (off) or ``HOST:PORT`` (IPv6 in brackets; no host = loopback)."""
    text_value = text(value).strip()
    if not text_value:
        return ""
    host_part, sep, port_text = text_value.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise Invalid(f'expected "HOST:PORT" such as "127.0.0.1:11434", got "{text_value}"')
    bare = host_part[1:-1] if host_part.startswith("[") and host_part.endswith("]") else host_part
    if not bare:
        return f"127.0.0.1:{port_text}"  # DESIGN.md: loopback unless told otherwise
    if bare != "localhost":
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            raise Invalid(
                f'expected an IP address or localhost before the port, got "{bare}"'
            ) from None
    return f"[{bare}]:{port_text}" if ":" in bare else f"{bare}:{port_text}"


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def check_listen(listen: str, base_url: str, error: Callable[[str, str], ConfigError]) -> None:
    """`[proxy] listen` may not be the server's own address: n3d would forward to itself."""
    if not listen:
        return
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    split = urlsplit(base_url)
    server_host, server_port = split.hostname or "", split.port or 80
    same_host = host == server_host or (_loopback(host) and _loopback(server_host))
    if int(port) != server_port or not same_host:
        return
    moved = f"http://127.0.0.1:{server_port + 1}"
    raise error(
        "proxy.listen",
        f'"{listen}" is the Ollama server\'s own address ({redact_url(base_url)}): n3d '
        "would forward every request to itself. Move Ollama to another port and keep "
        f'clients on this one: [ollama] base_url = "{moved}" (docs/proxy.md, '
        '"Putting n3d on 11434")',
    )
