"""OpenAI request bodies as Ollama's compatibility middleware reads them.

`FromChatRequest` and `FromCompleteRequest` (openai/openai.go:448-735, v0.13.5) and
the embeddings middleware (middleware/openai.go:344-392) turn an OpenAI body into
the native body the /api handler gets: `max_tokens` is `num_predict`, temperature
and top_p default to 1.0, `stop` becomes a list, `response_format` becomes
`format` (`json_object` is "json", `json_schema` its schema), a reasoning effort
becomes `think`, content parts become messages, and tool calls' JSON-string
arguments become objects. What they refuse raises :class:`OpenAIError` with
Ollama's text (a 400 `invalid_request_error`). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["OpenAIError", "chat_body", "completion_body", "embed_body"]


class OpenAIError(Exception):
    """A request the middleware refuses (400 `invalid_request_error`)."""


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
