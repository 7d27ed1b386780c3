"""The `openai` Python package on Ollama's OpenAI-compatible `/v1` routes.

The SDK parses every reply into its own typed objects and, for embeddings, asks for
base64 and decodes it itself, so shapes and encodings are checked as users meet them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.slow

openai = pytest.importorskip("openai")

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(base_url: str) -> Iterator[openai.OpenAI]:
    # Ollama ignores the key, but the SDK insists on one.
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="ollama", max_retries=0) as c:
        yield c


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="llama3.2", messages=HELLO)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "stop" and reply.object == "chat.completion"
    assert reply.usage is not None and reply.usage.total_tokens == (
        reply.usage.prompt_tokens + reply.usage.completion_tokens
    )


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="llama3.2", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0


def test_completions_streamed_and_not(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="llama3.2", prompt="Once upon a time", max_tokens=5)
    assert reply.choices[0].text and reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    chunks = list(client.completions.create(model="llama3.2", prompt="Once", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    reply = client.embeddings.create(model="nomic-embed-text", input=["one", "two"])
    assert [len(d.embedding) for d in reply.data] == [768, 768]
    floats = client.embeddings.create(
        model="nomic-embed-text", input="one", encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(reply.data[0].embedding, abs=1e-6)
    assert reply.usage.prompt_tokens > 0


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"llama3.2:latest", "nomic-embed-text:latest"} <= ids
    model = client.models.retrieve("llama3.2")
    assert model.id == "llama3.2" and model.owned_by == "library"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("ghost")


def test_tool_calls_and_json_output(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "add 2 and 3"}], tools=[ADD]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "add"
    assert set(json.loads(call.function.arguments)) == {"a", "b"}
    reply = client.chat.completions.create(
        model="llama3.2", messages=HELLO, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_errors_come_in_openais_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="ghost", messages=HELLO)
    assert "model 'ghost' not found" in str(caught.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="llama3.2", messages=[])
