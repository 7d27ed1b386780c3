"""Ollama's 500s that say a model's runner died under a request before its answer began.

Liveness's first repair stage kills one hung or wedged runner and leaves serve
running. Ollama then answers each request queued on that runner with a 500 and
``{"error": "..."}`` before any content (``streamResponse`` writes the error as
plain JSON when nothing was written yet), and loads the model again for the next
request (``needsReload``). Such a request has lost nothing, so the proxy sends it
once more, as it does a request whose connection failed (docs/proxy.md, "Retry").

:func:`runner_died` is the judgement, a pure function of status, content type and
body; :func:`read_error` reads the little of an answer it needs. The texts are
Ollama's own, from the request path of ``llm/server.go`` (v0.13.5; from v0.33
``llm/llama_server.go``, where the runner is ``llama-server``):

- ``llama runner process no longer running: `` (``llama-server process …``):
  ``getServerStatus`` found the runner exited, asked by ``Completion`` and
  ``Embedding`` before they send (and by ``WaitUntilRunning``);
- ``model runner has unexpectedly stopped, ``: ``Completion``'s post to the
  runner failed ("post predict");
- ``an error was encountered while running the model: ``: ``Completion``'s read
  of the runner's answer ended in ``unexpected EOF`` or ``forcibly closed``;
- ``do embedding request: ``: ``Embedding``'s post to the runner failed.

Nothing else: a missing model, a bad request, a context or memory error fails the
same way every time, and so does a runner that cannot load (``llama runner
process has terminated``, ``timed out waiting for llama runner to start``).
"""

from __future__ import annotations

import json

import aiohttp

__all__ = ["ERROR_CAP", "RUNNER_DIED", "read_error", "runner_died"]

ERROR_CAP = 64 * 1024  # an error body is a line; a larger 500 is relayed unread
RUNNER_DIED = (
    "llama runner process no longer running: ",
    "llama-server process no longer running: ",
    "model runner has unexpectedly stopped, ",
    "an error was encountered while running the model: ",
    "do embedding request: ",
)


def _is_json(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == "application/json"


def runner_died(status: int, content_type: str, body: bytes) -> bool:
    """Whether an answer says the request's runner died (module docstring).

    ``body`` is Ollama's ``{"error": "..."}``, or on ``/v1`` the OpenAI and
    Anthropic shapes ``{"error": {"message": "...", ...}}``.
    """
    if status != 500 or not _is_json(content_type) or len(body) > ERROR_CAP:
        return False
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return isinstance(error, str) and error.startswith(RUNNER_DIED)


async def read_error(upstream: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """What was read of ``upstream``'s body, and whether it says the runner died.

    Only a 500 labelled JSON is read, up to :data:`ERROR_CAP` bytes; any other
    answer is left unread (``b""``). A body that turns out larger comes back as
    far as it was read: the caller relays those bytes first. aiohttp's errors
    reach the caller, which translates them (the connection broke).
    """
    content_type = upstream.headers.get("Content-Type", "")
    length = upstream.content_length
    if upstream.status != 500 or not _is_json(content_type) or (length or 0) > ERROR_CAP:
        return b"", False
    head = bytearray()
    while len(head) <= ERROR_CAP:
        piece = await upstream.content.read(ERROR_CAP + 1 - len(head))
        if not piece:
            return bytes(head), runner_died(500, content_type, bytes(head))
        head += piece
    return bytes(head), False
