"""CORS as Ollama's router answers it: gin-contrib/cors v1.7.2 with Ollama's settings.

Ollama puts `cors.New` in front of every route, the unknown ones included
(routes.go:1461-1494): allowed origins are `OLLAMA_ORIGINS` (comma-separated) plus
`http(s)://localhost`, `127.0.0.1` and `0.0.0.0` on any port, `app://*`, `file://*`,
`tauri://*`, `vscode-webview://*` and `vscode-file://*` (envconfig/config.go:60-83),
with wildcards and browser-extension schemes allowed. What the middleware does
(cors.go `applyCors`, utils.go):
- no `Origin`, or an `Origin` of `http(s)://<Host>`: not a CORS request, nothing added;
- an origin not allowed: 403 with an empty body, whatever the route;
- `OPTIONS` from an allowed origin: 204 with the preflight headers (methods,
  Ollama's header list, max age 12 h, three `Vary` lines) and the origin echoed;
- any other request from an allowed origin: `Vary: Origin` and the origin echoed,
  then the route answers as usual.
With `OLLAMA_ORIGINS=*` every origin is allowed and `Access-Control-Allow-Origin: *`
is sent instead. An origin Ollama's configuration refuses (no scheme and no `*`, or
two `*`) panics at start, as `cors.New` does: :func:`check_origins` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cors", "CorsError", "Decision", "check_origins"]

_METHODS = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
_HEADERS = ",".join(
    [
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        # http.CanonicalHeaderKey of Ollama's lower-case OpenAI names
        "Openai-Beta",
        "X-Stainless-Arch",
        "X-Stainless-Async",
        "X-Stainless-Custom-Poll-Interval",
        "X-Stainless-Helper-Method",
        "X-Stainless-Lang",
        "X-Stainless-Os",
        "X-Stainless-Package-Version",
        "X-Stainless-Poll-Helper",
        "X-Stainless-Retry-Count",
        "X-Stainless-Runtime",
        "X-Stainless-Runtime-Version",
        "X-Stainless-Timeout",
    ]
)
_SCHEMES = (
    "http://",
    "https://",
    "chrome-extension://",
    "safari-extension://",
    "moz-extension://",
    "ms-browser-extension://",
)


class CorsError(ValueError):
    """An `OLLAMA_ORIGINS` entry Ollama panics on at start."""


def _origins(configured: tuple[str, ...]) -> list[str]:
    out = list(configured)
    for host in ("localhost", "127.0.0.1", "0.0.0.0"):
        out += [f"http://{host}", f"https://{host}", f"http://{host}:*", f"https://{host}:*"]
    return [*out, "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"]


def check_origins(configured: tuple[str, ...]) -> None:
    """Raise :class:`CorsError` with `cors.New`'s panic text for a refused origin."""
    origins = _origins(configured)
    for origin in origins:  # Config.Validate
        if "*" not in origin and not origin.startswith(_SCHEMES):
            raise CorsError("bad origin: origins must contain '*' or include " + ",".join(_SCHEMES))
    if any(origin.count("*") > 1 for origin in origins):  # parseWildcardRules
        raise CorsError("only one * is allowed")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the middleware does: `abort` with a status, or not; headers to add either way."""

    abort: int | None
    headers: list[tuple[str, str]]


class Cors:
    """The middleware's configuration, built once at start."""

    def __init__(self, configured: tuple[str, ...]) -> None:
        origins = _origins(configured)
        self.allow_all = "*" in origins
        self.exact = {o.strip().lower() for o in origins}  # `normalize`
        self.wildcards = []
        for origin in origins:
            if "*" in origin:
                star = origin.index("*")
                self.wildcards.append((origin[:star], origin[star + 1 :]))

    def _allowed(self, origin: str) -> bool:
        if self.allow_all or origin in self.exact:
            return True
        for head, tail in self.wildcards:
            # validateWildcardOrigin: "*x" is a suffix rule, "x*" a prefix rule.
            if head == "" and origin.endswith(tail):
                return True
            if tail == "" and origin.startswith(head):
                return True
            if origin.startswith(head) and origin.endswith(tail):
                return True
        return False

    def decide(self, method: str, origin: str, host: str) -> Decision:
        """`applyCors` for one request."""
        if not origin or origin in (f"http://{host}", f"https://{host}"):
            return Decision(None, [])
        if not self._allowed(origin):
            return Decision(403, [])
        echo = [] if self.allow_all else [("Access-Control-Allow-Origin", origin)]
        if method == "OPTIONS":
            headers = [
                ("Access-Control-Allow-Headers", _HEADERS),
                ("Access-Control-Allow-Methods", _METHODS),
                ("Access-Control-Max-Age", "43200"),
            ]
            if self.allow_all:
                headers.append(("Access-Control-Allow-Origin", "*"))
            else:
                headers += [
                    ("Vary", "Origin"),
                    ("Vary", "Access-Control-Request-Method"),
                    ("Vary", "Access-Control-Request-Headers"),
                ]
            return Decision(204, headers + echo)
        if self.allow_all:
            return Decision(None, [("Access-Control-Allow-Origin", "*")])
        return Decision(None, [("Vary", "Origin"), *echo])
