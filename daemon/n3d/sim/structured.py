"""Structured output: what a model says under `format` and when it calls a tool.

Ollama turns `format` into a grammar the runner's sampler must follow
(llm/server.go:1512-1531, v0.13.5): `"json"` allows any JSON, an object is a JSON
schema, `null` and `""` mean no format, and anything else fails the request with
`invalid format: ...`. The simulator's runner does what that grammar guarantees:
it writes JSON that parses and fits the schema (every property, with a value of its
type: objects, arrays, strings, numbers, integers, booleans, null, enums, consts,
`anyOf`/`oneOf`/`allOf`, and local `$ref`s into `$defs`/`definitions`, as pydantic
writes them).

A tools model, given tools and a conversation whose last message is not a tool
result, answers with a call, as llama3.2's template asks it to: the JSON text
`{"name": ..., "parameters": {...}}`, the tool being the first one whose name the
prompt mentions (else the first one), its arguments generated from the tool's
parameter schema. After a tool result it answers in words, so a client's tool loop
ends. Values are chosen by a hash of model and prompt: the same request gets the
same answer. Only the standard library: the runner imports this.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from n3d.sim.text import completion_words, rng_for

__all__ = ["FormatError", "answer_pieces", "check_format", "json_pieces", "tool_call"]

_MAX_DEPTH = 6  # deeper than this, recursive schemas get only what they require
_WORDS = ("alpha", "bravo", "delta", "echo", "harbor", "lumen", "meadow", "orbit", "quartz")
_STRING_FORMATS = {
    "date-time": "2024-06-04T14:38:31Z",
    "date": "2024-06-04",
    "time": "14:38:31",
    "email": "ada@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "3f2b8c1e-9a4d-4e6b-8f00-5c7d2a1b9e42",
    "ipv4": "192.0.2.1",
    "hostname": "example.com",
}
_PIECE = re.compile(r"\s*(?:[A-Za-z0-9_.+\-]+|[^\sA-Za-z0-9_.+\-]+)|\s+")


class FormatError(Exception):
    """A `format` Ollama refuses; the message is its 500 text."""


def check_format(value: Any, present: bool) -> Any:
    """The constraint `format` asks for: None, `"json"` or a schema (a dict).

    `present` tells an absent field (no format) from one given; FormatError for a
    value that is neither "json" nor an object (Go quotes its raw bytes with %q;
    the simulator quotes them re-encoded compactly).
    """
    if not present or value is None or value == "":
        return None  # `null` and `""`: "set, but missing a value"
    if value == "json":
        return "json"
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not isinstance(value, dict):
        quoted = json.dumps(raw, ensure_ascii=False)
        raise FormatError(
            f'invalid format: {quoted}; expected "json" or a valid JSON Schema object'
        )
    if not _refs_resolve(value, value):
        raise FormatError("invalid JSON schema in format")  # SchemaToGrammar gave nil
    return value


def _refs_resolve(node: Any, root: dict[str, Any]) -> bool:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and _resolve(ref, root) is None:
            return False
        return all(_refs_resolve(v, root) for v in node.values())
    if isinstance(node, list):
        return all(_refs_resolve(v, root) for v in node)
    return True


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any] | None:
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None


def _first_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        kind = next((k for k in kinds if k != "null"), kinds[0] if kinds else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _string(schema: dict[str, Any], rng: random.Random) -> str:
    shown = _STRING_FORMATS.get(str(schema.get("format", "")))
    text = shown or " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text = (text + " " + "x" * low)[:low] if low > len(text) + 1 else text + "x"
    if isinstance(high, int) and len(text) > high:
        text = text[: max(high, 0)]
    return text


def _number(schema: dict[str, Any], rng: random.Random, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    low = low if isinstance(low, int | float) and not isinstance(low, bool) else 0
    high = high if isinstance(high, int | float) and not isinstance(high, bool) else low + 100
    if integer:
        first, last = (
            int(low) + ("exclusiveMinimum" in schema),
            int(high) - ("exclusiveMaximum" in schema),
        )
        return rng.randint(first, max(first, last))
    return round(rng.uniform(float(low), float(high)), 2)


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _array(
    schema: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int
) -> list[Any]:
    prefix = schema.get("prefixItems")
    out = [_value(s, root, rng, depth + 1) for s in prefix] if isinstance(prefix, list) else []
    low = _int_or(schema.get("minItems"), 0)
    high = _int_or(schema.get("maxItems"), 3)
    count = low if depth >= _MAX_DEPTH else max(low, min(high, rng.randint(1, 3)))
    items = schema.get("items")
    while len(out) < count:
        out.append(_value(items if isinstance(items, dict) else {}, root, rng, depth + 1))
    return out


def _object(
    schema: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int
) -> dict[str, Any]:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = schema.get("required")
    required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
    names = list(props) if depth < _MAX_DEPTH else [r for r in props if r in required]
    names += [r for r in required if r not in props]  # required but undescribed: any value
    return {name: _value(props.get(name, {}), root, rng, depth + 1) for name in names}


def _value(schema: Any, root: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value that fits `schema` (generated depth-first, deterministic under `rng`)."""
    if not isinstance(schema, dict):
        return "" if schema is False else _string({}, rng)
    if isinstance(schema.get("$ref"), str):
        target = _resolve(schema["$ref"], root)
        return _value(target or {}, root, rng, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            chosen = next((o for o in options if _first_type(_deref(o, root)) != "null"), None)
            return _value(chosen if chosen is not None else options[0], root, rng, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged = dict(schema)
        for part in schema["allOf"]:
            merged.update(_deref(part, root))
        merged.pop("allOf")
        return _value(merged, root, rng, depth)
    kind = _first_type(schema)
    if kind == "object":
        return _object(schema, root, rng, depth)
    if kind == "array":
        return _array(schema, root, rng, depth)
    if kind in ("integer", "number"):
        return _number(schema, rng, kind == "integer")
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng)


def _deref(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        return _resolve(schema["$ref"], root) or {}
    return schema if isinstance(schema, dict) else {}


def json_pieces(text: str) -> list[str]:
    """`text` cut into token-sized pieces whose concatenation is `text`."""
    return _PIECE.findall(text)


def tool_call(tools: list[Any], prompt: str, rng: random.Random) -> dict[str, Any] | None:
    """The call a tools model makes: the tool the prompt names (else the first one)."""
    functions = [
        t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    named = [f for f in functions if isinstance(f.get("name"), str) and f["name"]]
    if not named:
        return None
    lowered = prompt.lower()
    chosen = next((f for f in named if f["name"].lower() in lowered), named[0])
    params = chosen.get("parameters")
    params = params if isinstance(params, dict) else {"type": "object"}
    return {"name": chosen["name"], "parameters": _value(params, params, rng)}


def answer_pieces(
    seed: str, prompt: str, fmt: Any = None, tools: Any = None, after_tool: bool = False
) -> list[str]:
    """What the model writes, piece by piece: a tool call, JSON under a format, or words."""
    rng = rng_for("structured", seed.lower(), prompt)
    if isinstance(tools, list) and tools and not after_tool:
        call = tool_call(tools, prompt, rng)
        if call is not None:
            return json_pieces(json.dumps(call, ensure_ascii=False))
    if fmt == "json":
        words = "".join(completion_words(seed, prompt)).strip()
        return json_pieces(json.dumps({"response": words}, ensure_ascii=False))
    if isinstance(fmt, dict):
        return json_pieces(json.dumps(_value(fmt, fmt, rng), ensure_ascii=False))
    return completion_words(seed, prompt)
