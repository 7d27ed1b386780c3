"""Model names follow Ollama's grammar (research/ollama.md §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from n3d.api.faults import code_of
from n3d.errors import InvalidModelName
from n3d.ollama.names import normalize, parse_model_name, same_model, validate


@pytest.mark.parametrize(
    ("name", "display"),
    [
        ("llama3", "llama3:latest"),
        ("llama3:8b", "llama3:8b"),
        ("library/llama3", "llama3:latest"),
        ("registry.ollama.ai/library/llama3:8b", "llama3:8b"),
        ("REGISTRY.OLLAMA.AI/Library/llama3", "llama3:latest"),
        ("jmorganca/llama3", "jmorganca/llama3:latest"),
        ("ns/model:tag", "ns/model:tag"),
        ("host:5000/ns/model:tag", "host:5000/ns/model:tag"),
        ("host:5000/ns/model", "host:5000/ns/model:latest"),
        ("https://example.com/ns/model:v1", "example.com/ns/model:v1"),
        ("qwen2.5:0.5b", "qwen2.5:0.5b"),
        ("nomic-embed-text", "nomic-embed-text:latest"),
        ("_under/m_x:t-1.2", "_under/m_x:t-1.2"),
        ("LLama3:8B", "LLama3:8B"),
    ],
)
def test_valid_names_display_like_ollama(name: str, display: str) -> None:
    assert normalize(name) == display


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("m:", "the tag is empty"),
        (":tag", "the model is empty"),
        ("/m", "the namespace is empty"),
        ("ns/", "the model is empty"),
        ("-model", "must start with"),
        (".model", "must start with"),
        ("model:-tag", "must start with"),
        ("my.ns/model", "'.'"),
        ("llama 3", "' '"),
        ("llamä", "'ä'"),
        ("model:t/x", "namespace 'model:t' contains ':'"),
        ("a/b/c/d", "'/'"),
        ("m@sha256:abc", "digest"),
        ("x" * 81, "at most 80"),
        ("ns/" + "x" * 81, "at most 80"),
        ("n" * 81 + "/m", "at most 80"),
        ("m:" + "t" * 81, "at most 80"),
        ("h" * 351 + "/ns/m", "at most 350"),
    ],
)
def test_invalid_names_say_which_part_and_why(name: str, fragment: str) -> None:
    with pytest.raises(InvalidModelName) as info:
        parse_model_name(name)
    assert fragment in info.value.message
    assert code_of(info.value) == 1003
    assert info.value.kind == "invalid_model_name"


def test_length_limits_are_inclusive() -> None:
    assert parse_model_name("x" * 80).model == "x" * 80
    assert parse_model_name("n" * 80 + "/m").namespace == "n" * 80
    assert parse_model_name("m:" + "t" * 80).tag == "t" * 80
    assert parse_model_name("h" * 350 + "/ns/m").host == "h" * 350


def test_tag_is_split_only_after_the_last_slash() -> None:
    name = parse_model_name("localhost:11434/ns/model")
    assert (name.host, name.namespace, name.model, name.tag) == (
        "localhost:11434",
        "ns",
        "model",
        "latest",
    )


def test_matching_ignores_case_and_defaults() -> None:
    assert same_model("llama3", "llama3:latest")
    assert same_model("LLAMA3", "registry.ollama.ai/library/llama3:latest")
    assert not same_model("llama3", "llama3:8b")
    assert not same_model("llama3", "bad name")


def test_validate_never_raises() -> None:
    assert validate("llama3") == (
        True,
        "llama3:latest",
        "'llama3' is a valid model name (llama3:latest)",
    )
    ok, normalized, message = validate("bad name")
    assert not ok and normalized == "" and "' '" in message


_part = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,20}", fullmatch=True)


@given(model=_part, tag=_part, ns=st.one_of(st.none(), _part))
def test_display_round_trips(model: str, tag: str, ns: str | None) -> None:
    text = f"{ns}/{model}:{tag}" if ns else f"{model}:{tag}"
    once = normalize(text)
    assert normalize(once) == once
    assert same_model(text, once)


@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes(text: str) -> None:
    ok, normalized, message = validate(text)
    assert isinstance(message, str) and message
    if ok:
        assert normalize(normalized) == normalized
