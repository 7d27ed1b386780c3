"""OpenAI's shapes as Ollama's compatibility layer makes them (openai/openai.go, v0.13.5).

Pure translations, no I/O: an OpenAI request body becomes the Ollama body the
middleware hands to the native handler (`FromChatRequest`, `FromCompleteRequest`,
the embeddings middleware), and a native reply becomes the OpenAI object
(`ToChatCompletion`, `ToChunk`, `ToCompletion`, `ToCompleteChunk`,
`ToEmbeddingList`, `ToListCompletion`, `ToModel`, `NewError`). Go's quirks are kept:
`finish_reason` is null until the last chunk, `usage` is always present on a
non-streamed reply, a streamed completion with `include_usage` carries zero usage
on every chunk, an empty model list is `"data": null`, and a native error of any
status becomes `{"error": {"message", "type": "api_error", ...}}`.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import random
import struct
import time
from typing import Any

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name

__all__ = [
    "OpenAIError",
    "chat_body",
    "chat_chunk",
    "chat_completion",
    "completion",
    "completion_body",
    "completion_chunk",
    "embed_body",
    "embedding_list",
    "error_body",
    "model_list",
    "model_object",
    "new_id",
    "usage",
]


class OpenAIError(Exception):
    """A request the middleware refuses (400 `invalid_request_error`)."""


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


def _go_type(value: Any) -> str:
    """Go's %T of a decoded JSON value (`invalid message content type: %T`)."""
    names = {bool: "bool", int: "float64", float: "float64", dict: "map[string]interface {}"}
    return "<nil>" if value is None else names.get(type(value), "string")


def _bind_error(struct_name: str, key: str, value: Any, go_type: str) -> OpenAIError:
    kind = {bool: "bool", int: "number", float: "number", str: "string", list: "array"}
    shown = kind.get(type(value), "object")
    where = f"Go struct field {struct_name}.{key} of type {go_type}"
    return OpenAIError(f"json: cannot unmarshal {shown} into {where}")


def _check(body: dict[str, Any], struct_name: str, fields: dict[str, tuple[Any, str]]) -> None:
    """gin's ShouldBindJSON: every field present must have its Go type."""
    for key, (types, go_type) in fields.items():
        value = body.get(key)
        if value is None or (
            ((types is bool) == isinstance(value, bool)) and isinstance(value, types)
        ):
            continue
        raise _bind_error(struct_name, key, value, go_type)


_NUM = (int, float)
_CHAT_FIELDS: dict[str, tuple[Any, str]] = {
    "model": (str, "string"),
    "messages": (list, "[]openai.Message"),
    "stream": (bool, "bool"),
    "stream_options": (dict, "openai.StreamOptions"),
    "max_tokens": (int, "int"),
    "seed": (int, "int"),
    "temperature": (_NUM, "float64"),
    "frequency_penalty": (_NUM, "float64"),
    "presence_penalty": (_NUM, "float64"),
    "top_p": (_NUM, "float64"),
    "response_format": (dict, "openai.ResponseFormat"),
    "tools": (list, "[]api.Tool"),
    "reasoning_effort": (str, "string"),
    "logprobs": (bool, "bool"),
    "top_logprobs": (int, "int"),
}
_COMPLETION_FIELDS: dict[str, tuple[Any, str]] = {
    "model": (str, "string"),
    "prompt": (str, "string"),
    "stream": (bool, "bool"),
    "stream_options": (dict, "openai.StreamOptions"),
    "max_tokens": (int, "int"),
    "seed": (int, "int"),
    "temperature": (_NUM, "float32"),
    "frequency_penalty": (_NUM, "float32"),
    "presence_penalty": (_NUM, "float32"),
    "top_p": (_NUM, "float32"),
    "suffix": (str, "string"),
    "logprobs": (int, "int"),
}


def _common_options(body: dict[str, Any], options: dict[str, Any]) -> None:
    if body.get("max_tokens") is not None:
        options["num_predict"] = body["max_tokens"]
    options["temperature"] = body["temperature"] if body.get("temperature") is not None else 1.0
    if body.get("seed") is not None:
        options["seed"] = body["seed"]


def _tool_calls_in(calls: Any) -> list[dict[str, Any]]:
    """`FromCompletionToolCall`: OpenAI calls (arguments as a JSON string) to Ollama's."""
    out = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        try:
            arguments = json.loads(function.get("arguments", ""))
        except (TypeError, ValueError):
            raise OpenAIError("invalid tool call arguments") from None
        name = function.get("name", "")
        entry: dict[str, Any] = {"function": {"name": name, "arguments": arguments}}
        if call.get("id"):
            entry["id"] = call["id"]
        out.append(entry)
    return out


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`FromChatRequest`'s messages (openai.go:449-524)."""
    messages: list[dict[str, Any]] = []
    for msg in body["messages"]:
        msg = msg if isinstance(msg, dict) else {}
        role, content = msg.get("role", ""), msg.get("content")
        extra: dict[str, Any] = {}
        if str(role).lower() == "tool":
            name = msg.get("name") or ""
            if not name and msg.get("tool_call_id"):
                name = next(
                    (
                        c.get("function", {}).get("name", "")
                        for m in reversed(body["messages"])
                        for c in (m.get("tool_calls") or [])
                        if isinstance(c, dict) and c.get("id") == msg["tool_call_id"]
                    ),
                    "",
                )
            if name:
                extra["tool_name"] = name
        if msg.get("tool_call_id"):
            extra["tool_call_id"] = msg["tool_call_id"]
        if isinstance(content, str):
            calls = _tool_calls_in(msg.get("tool_calls"))
            messages.append({"role": role, "content": content, **extra, **_calls(calls)})
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
                    raise OpenAIError("invalid message format")
                if part["type"] == "text":
                    if not isinstance(part.get("text"), str):
                        raise OpenAIError("invalid message format")
                    messages.append({"role": role, "content": part["text"]})
                else:
                    messages.append({"role": role, "images": [_image(part.get("image_url"))]})
            if messages and msg.get("tool_calls"):
                messages[-1].update(_calls(_tool_calls_in(msg["tool_calls"])), **extra)
        elif msg.get("tool_calls") is None:
            raise OpenAIError(f"invalid message content type: {_go_type(content)}")
        else:
            calls = _tool_calls_in(msg["tool_calls"])
            messages.append({"role": role, "content": "", **extra, **_calls(calls)})
    return messages


def _calls(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": calls} if calls else {}


def _image(value: Any) -> str:
    """`decodeImageURL`: a base64 data URL's payload (Ollama's images are base64 too)."""
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise OpenAIError("invalid message format")
    prefixes = [f"data:image/{kind};base64," for kind in ("jpeg", "jpg", "png", "webp")]
    for prefix in ("data:;base64,", *prefixes):
        if url.startswith(prefix):
            payload = url[len(prefix) :]
            try:
                base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                break
            return payload
    raise OpenAIError("invalid image input")


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The /api/chat body ChatMiddleware makes of a /v1/chat/completions body."""
    _check(body, "ChatCompletionRequest", _CHAT_FIELDS)
    if not body.get("messages"):
        raise OpenAIError("[] is too short - 'messages'")
    options: dict[str, Any] = {}
    stop = body.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list):
        options["stop"] = [s for s in stop if isinstance(s, str)]
    _common_options(body, options)
    for key in ("frequency_penalty", "presence_penalty"):
        if body.get(key) is not None:
            options[key] = body[key]
    options["top_p"] = body["top_p"] if body.get("top_p") is not None else 1.0
    out: dict[str, Any] = {"model": body.get("model") or "", "messages": _messages(body)}
    fmt = body.get("response_format") or {}
    kind = str(fmt.get("type", "")).strip().lower()
    if kind == "json_object":
        out["format"] = "json"
    elif kind == "json_schema" and "schema" in (fmt.get("json_schema") or {}):
        out["format"] = fmt["json_schema"]["schema"]  # no schema given: no format
    reasoning = body.get("reasoning")
    effort = (
        reasoning.get("effort") if isinstance(reasoning, dict) else body.get("reasoning_effort")
    )
    if effort:
        if effort not in ("high", "medium", "low", "none"):
            raise OpenAIError(
                f"invalid reasoning value: '{effort}' "
                '(must be "high", "medium", "low", or "none")'
            )
        out["think"] = False if effort == "none" else effort
    out.update({"options": options, "stream": body.get("stream") is True})
    if body.get("tools"):
        out["tools"] = body["tools"]
    return out


def completion_body(body: dict[str, Any]) -> dict[str, Any]:
    """The /api/generate body CompletionsMiddleware makes of a /v1/completions body."""
    _check(body, "CompletionRequest", _COMPLETION_FIELDS)
    options: dict[str, Any] = {}
    stop = body.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list):
        for item in stop:
            if not isinstance(item, str):
                raise OpenAIError(f"invalid type for 'stop' field: {_go_type(item)}")
        options["stop"] = list(stop)
    _common_options(body, options)
    options["frequency_penalty"] = body.get("frequency_penalty") or 0.0
    options["presence_penalty"] = body.get("presence_penalty") or 0.0
    options["top_p"] = body.get("top_p") or 1.0
    return {
        "model": body.get("model") or "",
        "prompt": body.get("prompt") or "",
        "options": options,
        "stream": body.get("stream") is True,
        "suffix": body.get("suffix") or "",
    }


def embed_body(body: dict[str, Any]) -> dict[str, Any]:
    """The /api/embed body EmbeddingsMiddleware makes (middleware/openai.go:344-392)."""
    _check(body, "EmbedRequest", {"model": (str, "string"), "dimensions": (int, "int")})
    fmt = body.get("encoding_format") or ""
    if fmt and str(fmt).lower() not in ("float", "base64"):
        raise OpenAIError(
            f"Invalid value for 'encoding_format' = {fmt}. Supported values: ['float', 'base64']."
        )
    given = body.get("input")
    if given == "":
        given = [""]
    if given is None or given == []:
        raise OpenAIError("invalid input")
    out: dict[str, Any] = {"model": body.get("model") or "", "input": given}
    if body.get("dimensions"):
        out["dimensions"] = body["dimensions"]
    return out


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
