"""Poisoned JSON from "Ollama" (or whoever bound its port) is error 1010, never a crash.

Python's json reads `1e400` as inf (then `int(inf)` raises OverflowError), raises
RecursionError near 1 000 levels of nesting, accepts `NaN`/`Infinity`, and raises
UnicodeDecodeError for bytes that are not UTF-8. Each must reach the caller as
UnexpectedResponse (`ollama_error`, 1010), logged once as a warning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from n3d.api.faults import code_of
from n3d.errors import OllamaError, PullFailed, UnexpectedResponse
from n3d.ollama.client import OllamaClient
from n3d.ollama.decoding import MAX_DEPTH, SHAPE_ERRORS
from n3d.ollama.types import InstalledModel
from n3d.ollama.wire import Translator

from .ollama_fakes import BASE_URL, FakeOllama

DEEP = 100_000
OVERFLOWING_TAGS = b'{"models":[{"name":"m:latest","model":"m:latest","size":1e400}]}'
OVERFLOWING_PS = (
    b'{"models":[{"name":"m:latest","model":"m:latest","size":1,"size_vram":-1e400,'
    b'"expires_at":"2026-01-01T00:00:00Z"}]}'
)


def deeply_nested(levels: int) -> bytes:
    return b'{"models":' + b"[" * levels + b"]" * levels + b"}"


def raw(route: str, fake: FakeOllama, body: bytes, status: int = 200) -> None:
    fake.on(route, lambda request: httpx.Response(status, content=body))


Call = Callable[[OllamaClient], Awaitable[Any]]
LISTINGS: list[tuple[str, Call]] = [
    ("GET /api/tags", lambda c: c.tags()),
    ("GET /api/ps", lambda c: c.ps()),
]


@pytest.mark.parametrize(("route", "call"), LISTINGS, ids=["tags", "ps"])
async def test_overflowing_number_from_ollama_is_an_error_not_a_crash(
    client: OllamaClient, fake: FakeOllama, route: str, call: Call
) -> None:
    raw(route, fake, OVERFLOWING_TAGS if "tags" in route else OVERFLOWING_PS)
    with pytest.raises(UnexpectedResponse) as info:
        await call(client)
    assert code_of(info.value) == 1010 and info.value.kind == "ollama_error"
    assert "holds a number beyond a double" in info.value.message
    assert "1e400" in info.value.message
    assert info.value.base_url == BASE_URL


async def test_overflowing_number_anywhere_in_an_answer_is_refused(
    client: OllamaClient, fake: FakeOllama
) -> None:
    # Not only where an integer is read: in `details`, inf would reach n3d's clients
    # as `Infinity`, which is not JSON.
    raw("GET /api/tags", fake, b'{"models":[{"name":"m","details":{"x":[-1e400]}}]}')
    with pytest.raises(UnexpectedResponse, match="beyond a double: -1e400"):
        await client.tags()


def test_an_infinite_integer_field_is_a_value_error_not_an_overflow() -> None:
    # The types' own guard, for data that did not come through decode_json.
    with pytest.raises(ValueError, match="should be an integer, got inf"):
        InstalledModel.from_json({"name": "m", "size": float("inf")})


@pytest.mark.parametrize(("route", "call"), LISTINGS, ids=["tags", "ps"])
async def test_deeply_nested_json_from_ollama_is_an_error_not_a_crash(
    client: OllamaClient, fake: FakeOllama, route: str, call: Call
) -> None:
    raw(route, fake, deeply_nested(DEEP))
    with pytest.raises(UnexpectedResponse, match="nested too deeply"):
        await call(client)


async def test_nesting_python_can_read_is_still_refused_past_the_depth_limit(
    client: OllamaClient, fake: FakeOllama
) -> None:
    # 900 levels decode, but re-encoding them for a client (models.list's `details`)
    # or a log line would recurse again: refused where they enter.
    body = b'{"models":[{"name":"m","details":' + b"[" * 900 + b"]" * 900 + b"}]}"
    raw("GET /api/tags", fake, body)
    with pytest.raises(UnexpectedResponse, match=f"more than {MAX_DEPTH} levels"):
        await client.tags()


async def test_nesting_within_the_limit_is_accepted(client: OllamaClient, fake: FakeOllama) -> None:
    details = b'{"a":' * (MAX_DEPTH - 3) + b"1" + b"}" * (MAX_DEPTH - 3)
    raw("GET /api/tags", fake, b'{"models":[{"name":"m","details":' + details + b"}]}")
    assert [m.name for m in await client.tags()] == ["m"]


async def test_deeply_nested_error_body_is_an_error_not_a_crash(
    client: OllamaClient, fake: FakeOllama
) -> None:
    raw("GET /api/tags", fake, b'{"error":' + b"[" * DEEP + b"]" * DEEP + b"}", status=500)
    with pytest.raises(UnexpectedResponse) as info:
        await client.tags()
    assert info.value.status_code == 500
    assert len(info.value.message) < 2200  # the raw body, cut short


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
async def test_json_constants_go_never_writes_are_refused(
    client: OllamaClient, fake: FakeOllama, constant: bytes
) -> None:
    raw("GET /api/ps", fake, b'{"models":[{"name":"m","size":' + constant + b"}]}")
    with pytest.raises(UnexpectedResponse, match="is not JSON"):
        await client.ps()


async def test_bytes_that_are_not_utf8_are_an_error(client: OllamaClient, fake: FakeOllama) -> None:
    raw("GET /api/version", fake, b'{"version":"\xff\xfe"}')
    with pytest.raises(UnexpectedResponse):
        await client.version()


async def test_poisoned_lines_of_a_stream_are_an_error(
    client: OllamaClient, fake: FakeOllama
) -> None:
    body = b'{"status":"pulling manifest"}\n{"status":"pulling x","total":1e400}\n'
    raw("POST /api/pull", fake, body)
    with pytest.raises(UnexpectedResponse, match="beyond a double"):
        async for _ in client.pull("m"):
            pass

    final = b'{"model":"m","response":"","done":true,"eval_count":' + deeply_nested(DEEP)[10:]
    raw("POST /api/generate", fake, final)
    with pytest.raises(UnexpectedResponse):
        await client.generate("m", "hi")


async def test_an_unusable_answer_is_logged_as_a_warning(
    client: OllamaClient, fake: FakeOllama
) -> None:
    raw("GET /api/tags", fake, OVERFLOWING_TAGS)
    with capture_logs() as logs, pytest.raises(UnexpectedResponse):
        await client.tags()
    [entry] = [e for e in logs if e["event"] == "ollama.unusable_answer"]
    assert entry["log_level"] == "warning"
    assert entry["request"] == "GET /api/tags"
    assert "beyond a double" in entry["error"]


@pytest.mark.parametrize(
    "exc",
    [
        OverflowError("cannot convert float infinity to integer"),
        RecursionError("maximum recursion depth exceeded"),
        TypeError("'NoneType' object is not subscriptable"),
        KeyError("models"),
        IndexError("list index out of range"),
        AttributeError("'list' object has no attribute 'get'"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        ZeroDivisionError("division by zero"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_way_shaping_an_answer_fails_becomes_ollamas_error(exc: Exception) -> None:
    assert isinstance(exc, SHAPE_ERRORS)
    translator = Translator(BASE_URL)
    with pytest.raises(UnexpectedResponse) as info, translator.entering("GET /x", model=None):
        raise exc
    assert info.value.__cause__ is exc


def test_our_own_errors_pass_through_untranslated() -> None:
    translator = Translator(BASE_URL)
    failure = PullFailed("no", model="m", base_url=BASE_URL)
    with pytest.raises(PullFailed), translator.entering("POST /api/pull", model="m"):
        raise failure
    assert not isinstance(failure, SHAPE_ERRORS) and isinstance(failure, OllamaError)


@pytest.mark.parametrize("size", [b"1e300", b"9223372036854775808", b"-1e19"])
async def test_integers_beyond_int64_are_refused(
    client: OllamaClient, fake: FakeOllama, size: bytes
) -> None:
    # Go's sizes and counts are int64: a larger one is not Ollama, and a pull's
    # percentage of it (100 * completed / total) would overflow a double later.
    raw("GET /api/tags", fake, b'{"models":[{"name":"m","size":' + size + b"}]}")
    with pytest.raises(UnexpectedResponse, match="64-bit integer"):
        await client.tags()
