"""The method table without sockets: params checking, error mapping, metrics, progress."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from n3d.jsonrpc.protocol import JsonObject, Request
from n3d.metrics import REGISTRY
from n3d.rpc import Context, MethodTable, Param

from .support import make_table


class FakeSession:
    id = 7

    def __init__(self) -> None:
        self.sent: list[JsonObject] = []
        self.topics: Any = "unset"

    def send(self, message: JsonObject) -> None:
        self.sent.append(message)

    def subscribe(self, topics: frozenset[str] | None) -> None:
        self.topics = topics

    def unsubscribe(self) -> None:
        self.topics = "unset"


async def call(method: str, params: Any = None, table: MethodTable | None = None) -> Any:
    return await (table or make_table()).call(FakeSession(), Request(method, params, 1))


async def error_of(method: str, params: Any = None) -> dict[str, Any]:
    response = await call(method, params)
    assert "result" not in response, response
    return response["error"]  # type: ignore[no-any-return]


async def test_named_and_positional_params_bind_by_declared_order() -> None:
    assert (await call("subtract", [42, 23]))["result"] == 19
    assert (await call("subtract", {"subtrahend": 23, "minuend": 42}))["result"] == 19
    assert (await call("subtract", {"minuend": 1.5, "subtrahend": 1}))["result"] == 0.5


@pytest.mark.parametrize(
    ("params", "message", "param"),
    [
        ({"minuend": 1}, "missing required parameter 'subtrahend'", "subtrahend"),
        ({"minuend": 1, "subtrahend": 2, "extra": 3}, "unknown parameter 'extra'", "extra"),
        ({"minuend": "1", "subtrahend": 2}, "'minuend' must be number, got string", "minuend"),
        ({"minuend": True, "subtrahend": 2}, "'minuend' must be number, got boolean", "minuend"),
        ([1, 2, 3], "expected at most 2 positional params, got 3", None),
        ([1], "missing required parameter 'subtrahend'", "subtrahend"),
    ],
)
async def test_invalid_params_name_the_parameter(
    params: Any, message: str, param: str | None
) -> None:
    error = await error_of("subtract", params)
    assert error["code"] == -32602
    assert error["message"] == f"Invalid params: {message}"
    assert error.get("data") == ({"param": param} if param else None)


async def test_ollama_errors_become_application_errors_with_suggestion() -> None:
    error = await error_of("fail", {"kind": "ollama"})
    assert error["code"] == 1002
    assert error["message"] == "Ollama model 'llama3:8b' is not available locally."
    assert error["data"]["kind"] == "model_not_found"
    assert error["data"]["model"] == "llama3:8b"
    assert "ollama pull llama3:8b" in error["data"]["suggestion"]


async def test_method_error_passes_its_code_and_data() -> None:
    assert await error_of("fail", {"kind": "method"}) == {
        "code": -32001,
        "message": "custom failure",
        "data": {"why": "test"},
    }


async def test_unexpected_exception_is_internal_error_logged_never_sent() -> None:
    with capture_logs() as logs:
        error = await error_of("fail", {"kind": "boom"})
    assert error == {"code": -32603, "message": "Internal error in fail"}
    (entry,) = [e for e in logs if e["event"] == "rpc.internal_error"]
    assert isinstance(entry["exc_info"], RuntimeError)
    assert "secret" not in repr(error)


async def test_exception_group_with_one_ollama_error_is_unwrapped() -> None:
    from n3d.errors import OllamaError

    table = MethodTable()

    async def grouped(ctx: Context, p: dict[str, Any]) -> Any:
        raise ExceptionGroup("tg", [OllamaError.unreachable("http://x")])

    table.add("grouped", grouped)
    assert (await call("grouped", None, table))["error"]["code"] == 1001


async def test_method_not_found_and_notifications_get_no_response_object() -> None:
    assert (await error_of("nope"))["code"] == -32601
    table = make_table()
    assert await table.call(FakeSession(), Request("nope", None, None, True)) is None
    assert await table.call(FakeSession(), Request("fail", {"kind": "x"}, None, True)) is None


async def test_each_call_emits_rpc_duration_with_method_tag() -> None:
    with capture_logs() as logs:
        await call("get_data")
        await call("fail", {"kind": "boom"})
    metrics = [e for e in logs if e["event"] == "metric"]
    assert [m["tags"] for m in metrics] == [{"method": "get_data"}, {"method": "fail"}]
    assert all(m["metric"] == "n3d.rpc.duration" and m["unit"] == "s" for m in metrics)
    assert REGISTRY.snapshot()["histograms"]["n3d.rpc.duration"]["count"] == 2


async def test_progress_goes_to_the_token_and_is_closed_before_the_response() -> None:
    table = MethodTable()

    async def forgetful(ctx: Context, p: dict[str, Any]) -> Any:
        await ctx.progress({"kind": "begin", "title": "x"})
        raise RuntimeError("no end sent")

    table.add("forgetful", forgetful)
    session = FakeSession()
    with capture_logs():
        await table.call(session, Request("forgetful", {"workDoneToken": "t1"}, 1))
    assert [m["params"] for m in session.sent] == [
        {"token": "t1", "value": {"kind": "begin", "title": "x"}},
        {"token": "t1", "value": {"kind": "end"}},
    ]


async def test_progress_without_token_sends_nothing_and_bad_tokens_are_invalid_params() -> None:
    session = FakeSession()
    response = await make_table().call(session, Request("progress", {"steps": 2}, 1))
    assert response is not None and response["result"] == {"steps": 2} and session.sent == []
    error = await error_of("progress", {"steps": 1, "workDoneToken": {"no": 1}})
    assert error["code"] == -32602 and error["data"] == {"param": "workDoneToken"}


async def test_context_subscribe_reaches_the_session() -> None:
    session = FakeSession()
    await make_table().call(session, Request("events.subscribe", {"topics": ["health"]}, 1))
    assert session.topics == frozenset({"health"})


def test_duplicate_registration_is_refused() -> None:
    table = make_table()
    with pytest.raises(ValueError, match="already registered"):
        table.add("echo", table.get("echo").handler)  # type: ignore[union-attr]
    assert "echo" in {m.name for m in table} and len(table) > 5


def test_param_type_names_read_as_json() -> None:
    assert Param("x", (int, float)).type_names == ["number"]
    assert Param("x", (str, type(None))).type_names == ["string", "null"]
