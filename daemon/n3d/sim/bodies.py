"""Request bodies decoded with the errors Go's `encoding/json` and gin would give.

An empty body is `missing request body` (gin's `io.EOF`); broken JSON and wrong
field types are 400s worded like Go's decoder; `keep_alive` goes through Ollama's
`Duration.UnmarshalJSON` rules (`n3d.ollama.duration.parse_keep_alive`).
"""

from __future__ import annotations

import json
from typing import Any

from n3d.ollama.duration import KeepAliveError, parse_keep_alive
from n3d.sim.app import HttpError

__all__ = [
    "get_bool",
    "get_dict",
    "get_int",
    "get_list",
    "get_str",
    "keep_alive",
    "parse_body",
    "think",
]

_GO_KIND = {
    str: "string",
    bool: "bool",
    int: "number",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _kind(value: Any) -> str:
    return _GO_KIND.get(type(value), "value")


def parse_body(body: bytes, struct: str) -> dict[str, Any]:
    """The JSON object in a request body, or HttpError(400) with Go's wording."""
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        raise HttpError(400, "missing request body")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise HttpError(400, "unexpected EOF") from None
        char = text[exc.pos]
        raise HttpError(400, f"invalid character '{char}' looking for beginning of value") from None
    if not isinstance(value, dict):
        go_type = struct if "." in struct else f"api.{struct}"  # the package named or `api`
        raise HttpError(
            400, f"json: cannot unmarshal {_kind(value)} into Go value of type {go_type}"
        )
    return value


def _type_error(struct: str, key: str, value: Any, go_type: str) -> HttpError:
    return HttpError(
        400,
        f"json: cannot unmarshal {_kind(value)} into Go struct field "
        f"{struct}.{key} of type {go_type}",
    )


def get_str(body: dict[str, Any], key: str, struct: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _type_error(struct, key, value, "string")
    return value


def get_bool(body: dict[str, Any], key: str, struct: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _type_error(struct, key, value, "bool")
    return value


def get_dict(body: dict[str, Any], key: str, struct: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(struct, key, value, "map[string]interface {}")
    return value


def get_int(body: dict[str, Any], key: str, struct: str) -> int:
    value = body.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(struct, key, value, "int")
    if isinstance(value, float) and not value.is_integer():
        where = f"Go struct field {struct}.{key} of type int"
        raise HttpError(400, f"json: cannot unmarshal number {value} into {where}")
    return int(value)


def get_list(body: dict[str, Any], key: str, struct: str, go_type: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _type_error(struct, key, value, go_type)
    return value


def think(body: dict[str, Any]) -> bool | str | None:
    """`think` as `api.ThinkValue.UnmarshalJSON` takes it: a bool, "high"/"medium"/"low"."""
    value = body.get("think")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value not in ("high", "medium", "low"):
            raise HttpError(
                400,
                f'invalid think value: "{value}" (must be "high", "medium", "low", true, or false)',
            )
        return value
    raise HttpError(
        400, 'think must be a boolean or string ("high", "medium", "low", true, or false)'
    )


def keep_alive(body: dict[str, Any]) -> float | None:
    """Seconds from `keep_alive` (inf = forever, None = not given), or HttpError(400)."""
    try:
        return parse_keep_alive(body.get("keep_alive"))
    except KeepAliveError as exc:
        raise HttpError(400, str(exc)) from None
