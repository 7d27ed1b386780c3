"""Where the Ollama base URL comes from (DESIGN.md), first that is set winning.

1. `[ollama].base_url` in the config file
2. the environment variable `NAMEL3SS_OLLAMA_BASE_URL`
3. `[ollama].host` and/or `port` in the config file (the other defaults)
4. `OLLAMA_HOST`, parsed as Ollama parses it, `0.0.0.0`/`::` rewritten to loopback
5. `http://127.0.0.1:11434`

Every result is an http(s) URL with a host and no trailing slash. `ollama.host` and
`ollama.port` are shown as the host and port of that URL (:func:`url_host`,
:func:`url_port`), whatever set it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from n3d.config.checks import Invalid, check_url
from n3d.errors import ConfigError
from n3d.ollama.host import DEFAULT_PORT, format_hostport, parse_ollama_host

__all__ = ["DEFAULT", "DEFAULT_BASE_URL", "resolve_base_url", "url_host", "url_port"]

DEFAULT = "default"
DEFAULT_BASE_URL = "http://127.0.0.1:11434"
# Nobody can connect to "every interface": the same rewrite Ollama's own launchers do.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def _env_url(name: str, url: str) -> str:
    try:
        return check_url(url)
    except Invalid as exc:
        raise ConfigError(f"environment variable {name}: {exc}", key="ollama.base_url") from None


def resolve_base_url(
    given: Mapping[str, Any], env: Mapping[str, str], origin: str
) -> tuple[str, str, tuple[str, ...]]:
    """(base URL, its source, warnings to log), the first that is set winning.

    `given` holds the checked values the config file sets, by dotted key (unset
    keys absent or None); `origin` is the file's source string ("file:PATH").
    Raises :class:`ConfigError` for an environment variable that gives no usable URL.
    """
    if given.get("ollama.base_url"):
        return str(given["ollama.base_url"]), origin, ()
    name = "NAMEL3SS_OLLAMA_BASE_URL"
    if env.get(name, "").strip():
        return _env_url(name, env[name]), f"env:{name}", ()
    host, port = given.get("ollama.host"), given.get("ollama.port")
    if host is not None or port is not None:
        host = host or "127.0.0.1"
        hostport = format_hostport(_LOOPBACK.get(host, host), port or DEFAULT_PORT)
        return f"http://{hostport}", f"{origin} (host/port)", ()
    raw = env.get("OLLAMA_HOST", "")
    if raw.strip().strip("\"'").strip():  # Ollama treats blank and quoted-blank as unset
        parsed = parse_ollama_host(raw)
        warnings: tuple[str, ...] = ()
        if parsed.port_was_invalid:
            warnings = (
                f"OLLAMA_HOST={raw!r} has an invalid port; using {parsed.port} as Ollama does",
            )
        return _env_url("OLLAMA_HOST", parsed.connect_url()), "env:OLLAMA_HOST", warnings
    return DEFAULT_BASE_URL, DEFAULT, ()


def url_host(url: str) -> str:
    """The host of a base URL, as `ollama.host` is shown ("" when it has none)."""
    return urlsplit(url).hostname or ""


def url_port(url: str) -> int:
    """The port of a base URL, as `ollama.port` is shown (the scheme's when not written)."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)
