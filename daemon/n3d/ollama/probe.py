"""The inference probe: the cheapest request that really runs a loaded model.

`HEAD /` and `/api/version` are fixed handlers and `/api/ps` reads the scheduler's
table; none reaches a runner (research/users.md §1). This does:

- ``POST /api/generate {"model": M, "prompt": ".", "stream": false,
  "options": {"num_predict": 1}}``: prompt evaluation plus one generated token;
- for a model that only embeds (it refuses generate with a 400),
  ``POST /api/embed {"model": M, "input": "."}``.

Nothing else goes in the body, ever: a `num_ctx` (or any runner option) that differs
from the loaded one makes Ollama reload the model (`needsReload`), and a
`keep_alive` overwrites the model's pin (`useLoadedRunner`). The whole call is
bounded by the caller's ``timeout_s``; on expiry the connection is closed, which
drops the request from Ollama's queue. A probe is n3d's own check, not a user's
request: it records no request metrics (liveness records its own).
"""

from __future__ import annotations

from typing import Any

from n3d.ollama.chunks import InferenceStats
from n3d.ollama.decoding import brief, parse_final_object
from n3d.ollama.session import OllamaSession

__all__ = ["PROBE_PROMPT", "probe", "probe_request"]

PROBE_PROMPT = "."


def probe_request(name: str, *, embed: bool) -> tuple[str, dict[str, Any]]:
    """The route and body of a probe of model ``name`` (already a checked display name)."""
    if embed:
        return "/api/embed", {"model": name, "input": PROBE_PROMPT}
    body = {"model": name, "prompt": PROBE_PROMPT, "stream": False, "options": {"num_predict": 1}}
    return "/api/generate", body


def _answer(embed: bool) -> Any:
    def parse(data: dict[str, Any]) -> InferenceStats:
        if embed and not isinstance(data.get("embeddings"), list):
            raise ValueError(f"no 'embeddings' list in {brief(data)}")
        if not embed and data.get("done") is not True:
            raise ValueError(f"a generate answer that is not done: {brief(data)}")
        return InferenceStats.from_json(data)

    return parse


async def probe(
    session: OllamaSession, name: str, *, embed: bool, timeout_s: float
) -> InferenceStats:
    """Run one probe of ``name`` within ``timeout_s`` (the whole call); Ollama's counters.

    An embed answers no ``eval_count``, so its ``tokens_per_second`` is None. Raises
    :class:`~n3d.errors.OllamaTimeout` when no answer came in time, another
    :class:`~n3d.errors.OllamaError` when Ollama answered an error.
    """
    path, body = probe_request(name, embed=embed)
    content = await session.request("POST", path, model=name, body=body, timeout_s=timeout_s)
    with session.errors.entering(f"POST {path}", model=name):
        parsed: InferenceStats = _answer(embed)(
            parse_final_object(content, what=f"the answer to {path}")
        )
    return parsed
