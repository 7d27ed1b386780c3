"""The OpenAI translations and the CORS decisions, checked without a process
(middleware/openai.go, openai/openai.go and gin-contrib/cors as Ollama v0.13.5 uses them)."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from n3d.sim import openai_out
from n3d.sim.cors import Cors, CorsError, check_origins
from n3d.sim.openai_in import OpenAIError, chat_body, completion_body, embed_body

FINAL = {
    "model": "llama3.2",
    "created_at": "2024-06-04T21:38:31.83753Z",
    "message": {"role": "assistant", "content": "Hi."},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 11,
    "eval_count": 3,
}


def test_chat_body_maps_openai_fields_to_ollamas() -> None:
    native = chat_body(
        {
            "model": "llama3.2",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
            "max_tokens": 5,
            "stop": "\n",
            "seed": 7,
            "response_format": {"type": "json_object"},
            "stream": True,
        }
    )
    assert [m["content"] for m in native["messages"]] == ["Be brief.", "a", "b"]
    assert native["options"] == {
        "stop": ["\n"],
        "num_predict": 5,
        "temperature": 1.0,
        "seed": 7,
        "top_p": 1.0,
    }
    assert native["format"] == "json" and native["stream"] is True


def test_chat_body_takes_a_json_schema_and_tool_results() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    native = chat_body(
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "add", "arguments": '{"a":1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "2"},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema},
            },
        }
    )
    assert native["format"] == schema and native["stream"] is False
    assert native["messages"][0]["tool_calls"] == [
        {"function": {"name": "add", "arguments": {"a": 1}}, "id": "call_1"}
    ]
    assert native["messages"][1]["tool_name"] == "add"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "messages": []}, "[] is too short - 'messages'"),
        (
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            "invalid message content type: float64",
        ),
        ({"model": "m", "messages": [{"role": "user"}]}, "invalid message content type: <nil>"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"},
            "json: cannot unmarshal string into Go struct field "
            "ChatCompletionRequest.max_tokens of type int",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "reasoning_effort": "max",
            },
            'invalid reasoning value: \'max\' (must be "high", "medium", "low", or "none")',
        ),
    ],
)
def test_chat_bodies_the_middleware_refuses(body: dict[str, Any], message: str) -> None:
    with pytest.raises(OpenAIError) as caught:
        chat_body(body)
    assert str(caught.value) == message


def test_completion_and_embed_bodies() -> None:
    native = completion_body({"model": "m", "prompt": "p", "stop": ["a"], "suffix": "s"})
    assert native["options"]["stop"] == ["a"] and native["suffix"] == "s"
    assert native["options"]["frequency_penalty"] == 0.0 and native["stream"] is False
    with pytest.raises(OpenAIError, match="invalid type for 'stop' field: float64"):
        completion_body({"model": "m", "prompt": "p", "stop": [1]})
    assert embed_body({"model": "e", "input": ""})["input"] == [""]
    for bad in ({"model": "e"}, {"model": "e", "input": []}):
        with pytest.raises(OpenAIError, match="^invalid input$"):
            embed_body(bad)
    with pytest.raises(OpenAIError, match="Supported values: \\['float', 'base64'\\]"):
        embed_body({"model": "e", "input": "x", "encoding_format": "int8"})


def test_chat_completion_and_chunks_in_openais_shape() -> None:
    whole = openai_out.chat_completion("chatcmpl-1", FINAL)
    assert whole["created"] == 1717537111 and whole["system_fingerprint"] == "fp_ollama"
    assert whole["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}
    ]
    assert whole["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    first = openai_out.chat_chunk("chatcmpl-1", {"model": "m", "message": {"content": "H"}}, False)
    assert first["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant", "content": "H"},
        "finish_reason": None,
    }
    assert "usage" not in first


def test_tool_calls_become_openais_with_json_string_arguments() -> None:
    reply = dict(FINAL)
    reply["message"] = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_x", "function": {"index": 0, "name": "add", "arguments": {"b": 2, "a": 1}}}
        ],
    }
    choice = openai_out.chat_completion("c", reply)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_x",
            "index": 0,
            "type": "function",
            "function": {"name": "add", "arguments": '{"a":1,"b":2}'},
        }
    ]
    last = openai_out.chat_chunk("c", FINAL, tool_call_sent=True)
    assert last["choices"][0]["finish_reason"] == "tool_calls"


def test_embeddings_in_float_and_base64() -> None:
    reply = {"embeddings": [[0.5, -0.25]], "prompt_eval_count": 2}
    floats = openai_out.embedding_list("e", reply, "")
    assert floats["data"] == [{"object": "embedding", "embedding": [0.5, -0.25], "index": 0}]
    assert floats["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    encoded = openai_out.embedding_list("e", reply, "base64")["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (0.5, -0.25)


def test_model_list_and_model_and_errors() -> None:
    tags = {"models": [{"name": "me/x:latest", "modified_at": "2024-06-04T14:38:31.83753-07:00"}]}
    assert openai_out.model_list(tags)["data"] == [
        {"id": "me/x:latest", "object": "model", "created": 1717537111, "owned_by": "me"}
    ]
    assert openai_out.model_list({"models": []}) == {"object": "list", "data": None}
    assert openai_out.model_object({}, "llama3.2")["owned_by"] == "library"
    assert openai_out.error_body(500, "boom")["error"] == {
        "message": "boom",
        "type": "api_error",
        "param": None,
        "code": None,
    }
    assert json.dumps(openai_out.error_body(400, "x")).count("invalid_request_error") == 1


def test_cors_allows_localhost_origins_and_refuses_others() -> None:
    cors = Cors(())
    assert cors.decide("GET", "", "127.0.0.1:11434").headers == []
    assert cors.decide("GET", "http://127.0.0.1:11434", "127.0.0.1:11434").headers == []
    assert cors.decide("GET", "https://evil.example", "127.0.0.1:11434").abort == 403
    normal = cors.decide("POST", "http://localhost:3000", "127.0.0.1:11434")
    assert normal.abort is None
    assert normal.headers == [
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", "http://localhost:3000"),
    ]
    for origin in ("vscode-webview://abc", "app://x", "tauri://localhost", "http://0.0.0.0:8080"):
        assert cors.decide("GET", origin, "h").abort is None


def test_cors_preflight_is_a_204_with_ollamas_headers() -> None:
    preflight = Cors(()).decide("OPTIONS", "http://localhost:5173", "127.0.0.1:11434")
    assert preflight.abort == 204
    headers = dict(preflight.headers)
    assert headers["Access-Control-Allow-Methods"] == "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
    assert "X-Stainless-Os" in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Max-Age"] == "43200"
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert [v for k, v in preflight.headers if k == "Vary"] == [
        "Origin",
        "Access-Control-Request-Method",
        "Access-Control-Request-Headers",
    ]


def test_ollama_origins_add_origins_wildcards_and_star() -> None:
    cors = Cors(("https://app.example.com", "https://*.corp.example"))
    assert cors.decide("GET", "https://app.example.com", "h").abort is None
    assert cors.decide("GET", "https://wiki.corp.example", "h").abort is None
    assert cors.decide("GET", "https://other.example", "h").abort == 403
    star = Cors(("*",)).decide("GET", "https://anyone.example", "h")
    assert star == type(star)(None, [("Access-Control-Allow-Origin", "*")])


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        (("example.com",), "bad origin: origins must contain '*'"),
        (("http://*.a:*",), "only one \\*"),
    ],
)
def test_origins_ollama_panics_on(origins: tuple[str, ...], message: str) -> None:
    with pytest.raises(CorsError, match=message):
        check_origins(origins)
    check_origins(("http://ok.example", "chrome-extension://abc"))
