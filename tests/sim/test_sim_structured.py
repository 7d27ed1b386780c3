"""What the simulated model writes under `format` and with tools, and the option rules,
checked without a process (research/fidelity.md A1, A2, B3, B6)."""

from __future__ import annotations

import json
import random
from enum import Enum
from typing import Any

import pytest

from n3d.sim.options import OptionError, RunnerOptions, merge_options
from n3d.sim.structured import FormatError, answer_pieces, check_format, json_pieces, tool_call

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "required": ["a", "b"],
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        },
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "required": ["city", "unit"],
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": ["integer", "null"], "minimum": 1, "maximum": 7},
            },
        },
    },
}


def _text(fmt: Any = None, tools: Any = None, after_tool: bool = False) -> str:
    return "".join(answer_pieces("llama3.2:latest", "Tell me", fmt, tools, after_tool))


@pytest.mark.parametrize("value", [None, ""])
def test_null_and_empty_format_mean_no_format(value: Any) -> None:
    assert check_format(value, present=True) is None
    assert check_format("json", present=False) is None


@pytest.mark.parametrize(
    ("value", "raw"),
    [("xml", '"\\"xml\\""'), (5, '"5"'), ([1, 2], '"[1,2]"'), (True, '"true"')],
)
def test_a_format_that_is_neither_json_nor_an_object_is_ollamas_500_text(
    value: Any, raw: str
) -> None:
    with pytest.raises(FormatError) as caught:
        check_format(value, present=True)
    assert str(caught.value) == (
        f'invalid format: {raw}; expected "json" or a valid JSON Schema object'
    )


def test_a_schema_with_a_dangling_ref_is_invalid() -> None:
    with pytest.raises(FormatError, match="^invalid JSON schema in format$"):
        check_format({"$ref": "#/$defs/Missing"}, present=True)


def test_json_format_writes_an_object_that_parses() -> None:
    assert isinstance(json.loads(_text("json")), dict)


def test_schema_output_fits_types_enums_nesting_and_refs() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 3, "maxLength": 12},
            "age": {"type": "integer", "minimum": 18, "maximum": 30},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "color": {"enum": ["red", "green"]},
            "kind": {"const": "person"},
            "pets": {"type": "array", "items": {"$ref": "#/$defs/Pet"}, "minItems": 2},
            "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
        },
        "required": ["name", "age", "pets"],
        "$defs": {
            "Pet": {"type": "object", "properties": {"legs": {"type": "integer"}}},
        },
    }
    value = json.loads(_text(schema))
    assert 3 <= len(value["name"]) <= 12
    assert isinstance(value["age"], int) and 18 <= value["age"] <= 30
    assert isinstance(value["score"], float) and isinstance(value["ok"], bool)
    assert value["color"] in ("red", "green") and value["kind"] == "person"
    assert len(value["pets"]) >= 2 and all(isinstance(p["legs"], int) for p in value["pets"])
    assert isinstance(value["note"], str)


def test_a_pydantic_model_validates_what_the_model_wrote() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Color(Enum):
        RED = "red"
        BLUE = "blue"

    class Address(pydantic.BaseModel):
        street: str
        number: int

    class Person(pydantic.BaseModel):
        name: str
        age: int
        colors: list[Color]
        home: Address
        nickname: str | None = None

    text = _text(Person.model_json_schema())
    person = Person.model_validate_json(text)
    assert person.home.number == json.loads(text)["home"]["number"]


def test_a_recursive_schema_ends() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
        },
        "required": ["name"],
    }
    assert "name" in json.loads(_text(schema))


def test_pieces_join_back_into_the_text_and_come_in_several_tokens() -> None:
    text = json.dumps({"a": [1, 2.5, "x y"], "b": {"c": None, "d": True}})
    pieces = json_pieces(text)
    assert "".join(pieces) == text and len(pieces) > 10


def test_the_same_request_gets_the_same_answer() -> None:
    schema = WEATHER["function"]["parameters"]
    assert _text(schema) == _text(schema)
    assert _text(tools=[ADD]) == _text(tools=[ADD])


def test_a_tools_model_calls_the_tool_the_prompt_names_with_fitting_arguments() -> None:
    call = tool_call(
        [ADD, WEATHER], "what is the weather in Paris? use get_weather", random.Random(1)
    )
    assert call is not None and call["name"] == "get_weather"
    assert isinstance(call["parameters"]["city"], str)
    assert call["parameters"]["unit"] in ("celsius", "fahrenheit")
    first = tool_call([ADD, WEATHER], "no tool named here", random.Random(1))
    assert first is not None and first["name"] == "add"
    assert set(first["parameters"]) == {"a", "b"}


def test_after_a_tool_result_the_model_answers_in_words() -> None:
    assert json.loads(_text(tools=[ADD]))["name"] == "add"
    with pytest.raises(ValueError):
        json.loads(_text(tools=[ADD], after_tool=True))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_ctx": "abc"}, 'option "num_ctx" must be of type integer'),
        ({"num_ctx": True}, 'option "num_ctx" must be of type integer'),
        ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
        ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
        ({"stop": "x"}, 'option "stop" must be of type array'),
        ({"stop": ["x", 1]}, 'option "stop" must be of an array of strings'),
    ],
)
def test_an_option_of_the_wrong_type_fails_with_ollamas_text(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(OptionError) as caught:
        merge_options(4096, {}, options)
    assert str(caught.value) == message


def test_options_merge_defaults_then_model_then_request() -> None:
    merged, runner = merge_options(
        4096, {"stop": ["<eot>"], "temperature": 0.2}, {"temperature": 1, "num_ctx": 8192.9}
    )
    assert merged["stop"] == ["<eot>"] and merged["temperature"] == 1.0
    assert runner == RunnerOptions(num_ctx=8192)
    assert merge_options(4096, {}, {"unknown": object(), "seed": None})[1].num_ctx == 4096
    assert merge_options(4096, {}, {"num_ctx": 0})[1].num_ctx == 4  # GetRunner's minimum


@pytest.mark.parametrize(
    ("asked", "reloads"),
    [
        ({}, False),
        ({"num_batch": 512, "num_gpu": -1, "main_gpu": 0}, False),  # defaults named
        ({"num_gpu": -5}, False),  # a negative num_gpu never reloads
        ({"num_gpu": 0}, True),
        ({"num_ctx": 8192}, True),  # compared as asked, before the trained-context cap
        ({"use_mmap": False}, True),
        ({"temperature": 0.1, "num_predict": 3}, False),  # not runner options
    ],
)
def test_reload_compares_merged_runner_options(asked: dict[str, Any], reloads: bool) -> None:
    loaded = merge_options(4096, {}, {})[1]
    assert loaded.needs_reload(merge_options(4096, {}, asked)[1]) is reloads
