"""A server that keeps poisoning its answers is warned about once, then once a minute.

Keep-warm polls `/api/ps` every 1-10 s: without a pace, a poisoned `/api/ps` made
one `ollama.unusable_answer` warning per poll, forever. Every call still fails with
1010; only the log is paced.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from n3d.api.faults import code_of
from n3d.errors import UnexpectedResponse
from n3d.ollama.client import OllamaClient
from n3d.ollama.wire import UNUSABLE_SUMMARY_EVERY_S, Translator, Warned

from .ollama_fakes import BASE_URL, FakeOllama

POISON = b'{"models":[{"name":"m","size":1e400}]}'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def warnings(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "ollama.unusable_answer"]


def poisoned(translator: Translator, request: str = "GET /api/ps") -> None:
    with pytest.raises(UnexpectedResponse), translator.entering(request, model=None):
        raise ValueError("the answer to /api/ps holds a number beyond a double: 1e400")


def test_a_server_that_keeps_poisoning_is_warned_about_once_then_once_a_minute() -> None:
    clock = Clock()
    translator = Translator(BASE_URL, clock=clock)
    with capture_logs() as logs:
        for _ in range(200):  # a poll a second for 200 s
            poisoned(translator)
            clock.now += 1.0
    first, *summaries = warnings(logs)
    assert first["log_level"] == "warning" and "repeats" not in first
    assert "beyond a double" in first["error"] and first["request"] == "GET /api/ps"
    # At t = 60, 120 and 180 s: each sums up the minute before it.
    assert UNUSABLE_SUMMARY_EVERY_S == 60.0
    assert [s["repeats"] for s in summaries] == [60, 60, 60]
    assert all(s["log_level"] == "warning" and "beyond a double" in s["error"] for s in summaries)


def test_each_request_and_kind_of_unusable_answer_is_warned_about_at_once() -> None:
    translator = Translator(BASE_URL, clock=Clock())
    with capture_logs() as logs:
        poisoned(translator, "GET /api/ps")
        poisoned(translator, "GET /api/tags")
        with pytest.raises(UnexpectedResponse), translator.entering("GET /api/ps", model=None):
            raise TypeError("'NoneType' object is not subscriptable")
        poisoned(translator, "GET /api/ps")  # a repeat: held back
    assert [(w["request"], "repeats" in w) for w in warnings(logs)] == [
        ("GET /api/ps", False),
        ("GET /api/tags", False),
        ("GET /api/ps", False),
    ]


def test_the_clients_of_one_server_share_one_pace() -> None:
    # n3d asks one server through two clients (its calls, and liveness's heartbeat
    # and /api/ps): one poisoned server is one warning, not one per client.
    clock = Clock()
    shared = Warned(clock)
    calls, heartbeat = Translator(BASE_URL, warned=shared), Translator(BASE_URL, warned=shared)
    with capture_logs() as logs:
        for _ in range(30):
            poisoned(calls)
            poisoned(heartbeat)
            clock.now += 1.0
    assert len(warnings(logs)) == 1
    with capture_logs() as logs:  # apart, each would warn
        poisoned(Translator(BASE_URL, clock=clock))
        poisoned(Translator(BASE_URL, clock=clock))
    assert len(warnings(logs)) == 2


async def test_repeated_poison_is_still_an_error_each_time_but_one_warning(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.on("GET /api/ps", lambda request: httpx.Response(200, content=POISON))
    with capture_logs() as logs:
        for _ in range(20):
            with pytest.raises(UnexpectedResponse) as info:
                await client.ps()
            assert code_of(info.value) == 1010
    assert len(warnings(logs)) == 1
