"""Credentials in URLs are never shown: ``http://user:pass@host`` is shown as ``http://***@host``.

`[ollama] base_url` (or ``NAMEL3SS_OLLAMA_BASE_URL``) may carry userinfo, for a
reverse proxy in front of Ollama that asks for basic auth. n3d connects with the
URL as given, but every place that shows one (the log, `status` and its events,
`config.get` and `n3d config show`, error texts with their ``Server:`` line and
``data.base_url``, the service manager's status line) shows it through
:func:`redact_url`. The whole userinfo is hidden, user name included: a token
is often sent as the user name alone.

Standard library only (``errors`` imports it, and n3ctl imports ``errors``).
"""

from __future__ import annotations

import re

__all__ = ["redact_url"]

# scheme "://" userinfo "@": the userinfo runs to the authority's last "@" (the
# greedy run stops at the first "/", "?", "#" or blank, where the authority ends).
# Compiled on first use (re caches it), not at import: n3ctl imports this on every start.
_USERINFO = r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@"


def redact_url(text: str) -> str:
    """``text`` (a URL, or a message that holds URLs) with each URL's userinfo as ``***``."""
    return re.sub(_USERINFO, r"\1***@", text) if "@" in text else text
