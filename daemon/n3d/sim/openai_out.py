"""OpenAI replies as Ollama's compatibility layer makes them (openai/openai.go, v0.13.5).

A native reply becomes the OpenAI object (`ToChatCompletion`, `ToChunk`,
`ToCompletion`, `ToCompleteChunk`, `ToEmbeddingList`, `ToListCompletion`,
`ToModel`, `NewError`). Go's quirks are kept: `finish_reason` is null until the last
chunk, `usage` is always present on a non-streamed reply, an empty model list is
`"data": null`, tool-call arguments are a JSON string with sorted keys, and the
base64 embedding is little-endian float32. Pure: no I/O.
"""

from __future__ import annotations

import base64
import calendar
import json
import random
import struct
import time
from typing import Any

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name

__all__ = [
    "chat_chunk",
    "chat_completion",
    "completion",
    "completion_chunk",
    "embedding_list",
    "error_body",
    "model_list",
    "model_object",
    "new_id",
    "usage",
]


def error_body(status: int, message: str) -> dict[str, Any]:
    """`openai.NewError` (openai.go:218-230)."""
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def new_id(prefix: str) -> str:
    # middleware/openai.go:335, 427: fmt.Sprintf("chatcmpl-%d", rand.Intn(999)).
    return f"{prefix}-{random.randrange(999)}"


def _unix(stamp: Any) -> int:
    """`time.Time.Unix()` of an RFC 3339 time (`...Z` or `...-07:00`); now if unreadable."""
    text = str(stamp)
    try:
        seconds = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return int(time.time())
    if text.endswith("Z") or len(text) < 25 or text[-6] not in "+-":
        return seconds
    sign = 1 if text[-6] == "+" else -1
    return seconds - sign * (int(text[-5:-3]) * 3600 + int(text[-2:]) * 60)


def usage(reply: dict[str, Any]) -> dict[str, int]:
    """`ToUsage`: the prompt and completion tokens of a native final reply."""
    prompt, done = int(reply.get("prompt_eval_count", 0)), int(reply.get("eval_count", 0))
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def _openai_calls(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """`ToToolCalls`: arguments as a JSON string (Go marshals a map with sorted keys)."""
    out = []
    for call in reply.get("message", {}).get("tool_calls") or []:
        function = call.get("function", {})
        arguments = json.dumps(function.get("arguments"), separators=(",", ":"), sort_keys=True)
        out.append(
            {
                "id": call.get("id", ""),
                "index": function.get("index", 0),
                "type": "function",
                "function": {"name": function.get("name", ""), "arguments": arguments},
            }
        )
    return out


def _message(reply: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
    native = reply.get("message") or {}
    out: dict[str, Any] = {"role": native.get("role", ""), "content": native.get("content", "")}
    if native.get("thinking"):
        out["reasoning"] = native["thinking"]
    if calls:
        out["tool_calls"] = calls
    return out


def chat_completion(ident: str, reply: dict[str, Any]) -> dict[str, Any]:
    """`ToChatCompletion` (openai.go:262-292)."""
    calls = _openai_calls(reply)
    reason = "tool_calls" if calls else reply.get("done_reason") or None
    return {
        "id": ident,
        "object": "chat.completion",
        "created": _unix(reply.get("created_at")),
        "model": reply.get("model", ""),
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "message": _message(reply, calls), "finish_reason": reason}],
        "usage": usage(reply),
    }


def chat_chunk(ident: str, reply: dict[str, Any], tool_call_sent: bool) -> dict[str, Any]:
    """`ToChunk` (openai.go:295-324): the delta always says role "assistant"."""
    calls = _openai_calls(reply)
    delta = _message(reply, calls) | {"role": "assistant"}
    reason = reply.get("done_reason") or None
    if reason and (tool_call_sent or calls):
        reason = "tool_calls"
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": reply.get("model", ""),
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
    }


def completion(ident: str, reply: dict[str, Any]) -> dict[str, Any]:
    """`ToCompletion` (openai.go:336-355)."""
    return {
        "id": ident,
        "object": "text_completion",
        "created": _unix(reply.get("created_at")),
        "model": reply.get("model", ""),
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "text": reply.get("response", ""),
                "index": 0,
                "finish_reason": reply.get("done_reason") or None,
            }
        ],
        "usage": usage(reply),
    }


def completion_chunk(ident: str, reply: dict[str, Any]) -> dict[str, Any]:
    """`ToCompleteChunk` (openai.go:358-376); its field order differs from `completion`'s."""
    return {
        "id": ident,
        "object": "text_completion",
        "created": int(time.time()),
        "choices": [
            {
                "text": reply.get("response", ""),
                "index": 0,
                "finish_reason": reply.get("done_reason") or None,
            }
        ],
        "model": reply.get("model", ""),
        "system_fingerprint": "fp_ollama",
    }


def embedding_list(model: str, reply: dict[str, Any], encoding: str) -> dict[str, Any]:
    """`ToEmbeddingList` (openai.go:398-428): base64 is little-endian float32."""
    vectors = reply.get("embeddings")
    if vectors is None:
        empty = {"prompt_tokens": 0, "total_tokens": 0}
        return {"object": "", "data": None, "model": "", "usage": empty}
    data = []
    for index, vector in enumerate(vectors):
        value: Any = vector
        if encoding.lower() == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "embedding": value, "index": index})
    tokens = int(reply.get("prompt_eval_count", 0))
    return {
        "object": "list",
        "data": data or None,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _owner(name: str) -> str:
    try:
        return parse_model_name(name).namespace
    except InvalidModelName:
        return ""


def model_list(tags: dict[str, Any]) -> dict[str, Any]:
    """`ToListCompletion` (openai.go:379-394): no models is `"data": null`."""
    data = [
        {
            "id": m.get("name", ""),
            "object": "model",
            "created": _unix(m.get("modified_at")),
            "owned_by": _owner(m.get("name", "")),
        }
        for m in tags.get("models") or []
    ]
    return {"object": "list", "data": data or None}


def model_object(show: dict[str, Any], name: str) -> dict[str, Any]:
    """`ToModel` (openai.go:438-445): the id is the name as asked."""
    return {
        "id": name,
        "object": "model",
        "created": _unix(show.get("modified_at")),
        "owned_by": _owner(name),
    }
