"""The official `ollama` Python package (ollama-python) against an Ollama API.

Its typed responses are pydantic models, so any field of the wrong shape fails here as
it would in a user's program.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.slow

ollama = pytest.importorskip("ollama")
pydantic = pytest.importorskip("pydantic")


class Person(pydantic.BaseModel):
    name: str
    age: int
    languages: list[str]


def add_two_numbers(a: int, b: int) -> int:
    """Add two numbers.

    Args:
      a: The first number
      b: The second number
    """
    return a + b


@pytest.fixture
def client(base_url: str) -> Iterator[ollama.Client]:
    with ollama.Client(host=base_url, timeout=30) as c:
        yield c


def test_list_and_show(client: ollama.Client) -> None:
    names = {m.model for m in client.list().models}
    assert {"llama3.2:latest", "tinyllama:latest", "nomic-embed-text:latest"} <= names
    shown = client.show("llama3.2")
    assert shown.capabilities is not None and "tools" in shown.capabilities
    assert shown.template is not None and ".Tools" in shown.template
    assert shown.details.family == "llama"


def test_pull_streams_progress_then_list_and_delete(client: ollama.Client) -> None:
    statuses = [p.status for p in client.pull("qwen2.5:0.5b", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert any(s and s.startswith("pulling ") and s != "pulling manifest" for s in statuses)
    assert "qwen2.5:0.5b" in {m.model for m in client.list().models}
    client.delete("qwen2.5:0.5b")
    assert "qwen2.5:0.5b" not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete("qwen2.5:0.5b")
    assert caught.value.status_code == 404


def test_generate_streamed_and_not(client: ollama.Client) -> None:
    whole = client.generate(model="llama3.2", prompt="Why is the sky blue?")
    assert whole.done and whole.done_reason == "stop" and whole.response
    assert whole.eval_count and whole.prompt_eval_count
    parts = list(client.generate(model="llama3.2", prompt="Why is the sky blue?", stream=True))
    assert "".join(p.response for p in parts) == whole.response
    assert parts[-1].done and not any(p.done for p in parts[:-1])


def test_chat_streamed_and_not(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Hello there"}]
    whole = client.chat(model="llama3.2", messages=messages)
    assert whole.message.role == "assistant" and whole.message.content
    parts = list(client.chat(model="llama3.2", messages=messages, stream=True))
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].done


def test_embed_and_ps(client: ollama.Client) -> None:
    embedded = client.embed(model="nomic-embed-text", input=["first", "second"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 768
    loaded = {m.model for m in client.ps().models}
    assert "nomic-embed-text:latest" in loaded


def test_format_json_and_a_pydantic_schema(client: ollama.Client) -> None:
    reply = client.chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "Describe a programmer"}],
        format=Person.model_json_schema(),
    )
    person = Person.model_validate_json(reply.message.content or "")
    assert person.name and isinstance(person.age, int)
    generated = client.generate(model="llama3.2", prompt="Reply in JSON", format="json")
    assert isinstance(pydantic.TypeAdapter(dict).validate_json(generated.response), dict)


def test_tools_give_tool_calls_and_a_model_without_tools_is_refused(
    client: ollama.Client,
) -> None:
    messages = [{"role": "user", "content": "What is three plus one?"}]
    reply = client.chat(model="llama3.2", messages=messages, tools=[add_two_numbers])
    calls = reply.message.tool_calls or []
    assert [call.function.name for call in calls] == ["add_two_numbers"]
    arguments = calls[0].function.arguments
    result = add_two_numbers(**arguments)
    messages += [
        reply.message,
        {"role": "tool", "content": str(result), "tool_name": "add_two_numbers"},
    ]
    final = client.chat(model="llama3.2", messages=messages, tools=[add_two_numbers])
    assert final.message.content and not final.message.tool_calls
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="tinyllama", messages=messages[:1], tools=[add_two_numbers])
    assert caught.value.status_code == 400
    assert "does not support tools" in caught.value.error


def test_a_missing_model_is_a_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="ghost", prompt="hi")
    assert caught.value.status_code == 404 and caught.value.error == "model 'ghost' not found"
