"""The checks behind every config key, except durations (:mod:`n3d.config.durations`).

A check takes a raw TOML value and returns the typed value n3d uses (arrays as
tuples, tables as read-only mappings), or raises :class:`Invalid` whose message
says what was expected. Checks know nothing of files or lines: the loader adds those.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name

T = TypeVar("T")

__all__ = [
    "Check",
    "Invalid",
    "base_url",
    "boolean",
    "check_url",
    "choice",
    "closest",
    "command",
    "describe",
    "env_table",
    "factor",
    "host",
    "integer",
    "model_entries",
    "model_list",
    "model_name",
    "text",
]


class Invalid(ValueError):
    """A value does not fit its key; the message says what was expected.

    `subkey` names the entry of a table value at fault (`server.env` → `A`).
    """

    def __init__(self, message: str, *, subkey: str | None = None) -> None:
        super().__init__(message)
        self.subkey = subkey


Check = Callable[[Any], Any]

_INT64_MAX = 2**63 - 1  # TOML integers are 64-bit signed (tomllib accepts any size)


def describe(value: object) -> str:
    """A TOML-flavoured description of a value for error messages (`the string "5"`)."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # TOML dates and times


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The most similar choice, for 'did you mean' hints, or None."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def integer(low: int, high: int | None = None, what: str = "an integer") -> Check:
    """An integer in ``low..high`` (``high`` None: up to the largest TOML integer, 2**63-1)."""
    top = _INT64_MAX if high is None else high

    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected {what}, got {describe(value)}")
        if value < low or value > top:
            bounds = f"of at least {low}" if value < low and high is None else f"in {low}..{top}"
            raise Invalid(f"expected {what} {bounds}, got {value}")
        return value

    return check


def factor(value: object) -> float:
    """A ratio: 0 (off), or a number above 1 (at 1 or below, every result would be "slow")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number (0 = off, else above 1), got {describe(value)}")
    number = float(value)
    if number != 0 and not 1 < number < float("inf"):
        raise Invalid(f"expected 0 (off) or a finite number above 1, got {value}")
    return number


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {describe(value)}")
    return value


def text(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {describe(value)}")
    return value


def choice(*options: str) -> Check:
    def check(value: object) -> str:
        if not isinstance(value, str) or value not in options:
            wanted = ", ".join(f'"{o}"' for o in options)
            near = closest(value.lower(), options) if isinstance(value, str) else None
            hint = f'; did you mean "{near}"?' if near else ""
            raise Invalid(f"expected one of {wanted}, got {describe(value)}{hint}")
        return value

    return check


def model_name(value: object) -> str:
    """A valid Ollama model name, kept as written (compare with `names.same_model`)."""
    if not isinstance(value, str):
        raise Invalid(f"expected a model name string, got {describe(value)}")
    try:
        parse_model_name(value)
    except InvalidModelName as exc:
        raise Invalid(exc.message) from None
    return value


def model_entries(value: object, entry: Callable[[object], T]) -> tuple[T, ...]:
    """An array of model entries, each checked by ``entry``; a bad one is named by number."""
    if not isinstance(value, list):
        raise Invalid(f'expected an array of model names like ["llama3:8b"], got {describe(value)}')
    out = []
    for i, item in enumerate(value, start=1):
        try:
            out.append(entry(item))
        except Invalid as exc:
            raise Invalid(f"entry {i}: {exc}") from None
    return tuple(out)


def model_list(value: object) -> tuple[str, ...]:
    return model_entries(value, model_name)


def command(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid(
            f'expected an array of strings like ["ollama", "serve"], got {describe(value)}'
        )
    for i, arg in enumerate(value, start=1):
        if not isinstance(arg, str):
            raise Invalid(f"expected strings only; entry {i} is {describe(arg)}")
        if "\0" in arg:
            # exec takes C strings: no program or argument can hold a NUL byte.
            raise Invalid(f"entry {i} contains a NUL byte (\\u0000): no program can receive it")
    if not value or not value[0]:
        raise Invalid('expected a program and its arguments, like ["ollama", "serve"]; got none')
    return tuple(value)


def env_table(value: object) -> MappingProxyType[str, str]:
    if not isinstance(value, dict):
        raise Invalid(
            f'expected a table of strings like {{ OLLAMA_MODELS = "/data" }}, got {describe(value)}'
        )
    for name, item in value.items():
        if not name or "=" in name or "\0" in name:
            raise Invalid(f'"{name}" is not a usable environment variable name', subkey=name)
        if not isinstance(item, str):
            raise Invalid(f"expected a string, got {describe(item)}", subkey=name)
        if "\0" in item:
            # The environment is C strings too: the child could not be started.
            raise Invalid(
                "the value contains a NUL byte (\\u0000): no environment can carry it",
                subkey=name,
            )
    return MappingProxyType(dict(value))


def check_url(value: str) -> str:
    """An http(s) URL with a host, returned without trailing slashes."""
    url = value.strip()
    example = 'like "http://127.0.0.1:11434"'
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Invalid(f'"{value}" is not a valid URL ({exc}); expected one {example}') from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f'expected an http:// or https:// URL with a host, {example}; got "{value}"')
    if port == 0:
        raise Invalid(f'port 0 in "{value}": expected a port in 1..65535')
    if parts.query or parts.fragment:
        raise Invalid(f'a base URL has no "?query" or "#fragment"; got "{value}"')
    return url.rstrip("/")


def base_url(value: object) -> str | None:
    """A full URL; the empty string means unset."""
    return check_url(text(value)) if text(value) else None


_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def host(value: object) -> str | None:
    """A host name or IP address, IPv6 with or without brackets; empty means unset."""
    name = text(value).strip()
    if not name:
        return None
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if "://" in bare or "/" in bare:
        raise Invalid(
            f'expected a host name or IP address, got "{name}"; put a full URL in base_url'
        )
    if ":" in bare:
        try:
            return str(ipaddress.IPv6Address(bare))
        except ValueError:
            raise Invalid(
                f'expected a host name or IP address, got "{name}"; put the port in `port`'
            ) from None
    if not _HOSTNAME.fullmatch(bare):
        raise Invalid(f'"{name}" is not a valid host name or IP address')
    return bare
