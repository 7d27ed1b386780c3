"""Ollama's routes as the proxy names them: templates, side effects, streams, how they are routed.

A record's ``route`` is the template of Ollama's router (gin's ``/api/blobs/:digest``),
never the raw path: ids in a path would make a metric series per blob or model.
Paths Ollama does not route are ``other``, so a scanner probing random paths adds
one series, not thousands. Standard library only.
"""

from __future__ import annotations

__all__ = [
    "BY_MODEL",
    "LOADS_MODEL",
    "MERGED",
    "NO_RETRY",
    "OTHER",
    "is_inference",
    "route_of",
]

OTHER = "other"
# server/routes.go GenerateRoutes, plus the OpenAI- and Anthropic-compatible ones.
_EXACT = frozenset(
    {
        "/",
        "/api/version",
        "/api/status",
        "/api/tags",
        "/api/ps",
        "/api/pull",
        "/api/push",
        "/api/show",
        "/api/delete",
        "/api/create",
        "/api/copy",
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
        "/v1/messages",
        "/v1/responses",
    }
)
# Prefixes whose next segment is an id: (prefix, template).
_WITH_ID = (
    ("/api/blobs/", "/api/blobs/:digest"),
    ("/v1/models/", "/v1/models/:model"),
)
# DESIGN.md, Retry: routes with side effects are never sent twice.
NO_RETRY = frozenset({"/api/create", "/api/copy", "/api/delete", "/api/push", "/api/blobs/:digest"})
# Routes whose chunks carry generated text: TTFT is measured on them.
_INFERENCE = frozenset(
    {
        "/api/generate",
        "/api/chat",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/messages",
        "/v1/responses",
    }
)
# With several servers (docs/proxy.md, "Several servers"): routes whose request
# names a model go where that model is (body `model`, or the path's :model);
# these GETs are answered by every healthy server, merged; the rest (`/`, the
# version, model management, unknown paths) go to the first healthy server.
_EMBED = frozenset({"/api/embed", "/api/embeddings", "/v1/embeddings"})
LOADS_MODEL = _INFERENCE | _EMBED  # a 200 answer means the server has the model loaded
BY_MODEL = LOADS_MODEL | {"/api/show", "/v1/models/:model"}
MERGED = frozenset({"/api/tags", "/api/ps", "/v1/models"})


def route_of(path: str) -> str:
    """The template ``path`` matches (``/api/blobs/sha256:ab…`` → ``/api/blobs/:digest``)."""
    if path in _EXACT:
        return path
    for prefix, template in _WITH_ID:
        if path.startswith(prefix) and "/" not in path[len(prefix) :] and len(path) > len(prefix):
            return template
    return OTHER


def is_inference(route: str) -> bool:
    """Whether ``route`` generates text (its first content chunk is the TTFT)."""
    return route in _INFERENCE
