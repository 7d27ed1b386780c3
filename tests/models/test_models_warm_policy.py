"""The keeper's timing rules as pure functions, and its backoff with a failing server."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from n3d.models import Models
from n3d.models.warm_policy import backoff_delay, poll_interval, refresh_at, refresh_lead
from n3d.ollama.client import OllamaClient

from .models_support import Events, MakeSettings, running, wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_polling_is_a_third_of_the_health_interval_within_one_to_ten_seconds() -> None:
    assert poll_interval(30) == 10.0
    assert poll_interval(6) == 2.0
    assert poll_interval(1) == 1.0
    assert poll_interval(300) == 10.0


def test_a_finite_keep_alive_is_refreshed_shortly_before_it_expires() -> None:
    # 5 min keep-alive, 10 s polls: refresh 21 s before expiry, so once per 4 min 39 s
    assert refresh_lead(300, 10) == 21.0
    assert refresh_at(NOW + timedelta(seconds=300), 300, 10, NOW) == 279.0
    assert refresh_at(NOW + timedelta(seconds=20), 300, 10, NOW) == -1.0  # due now
    # short keep-alives: never more than one refresh per half keep-alive
    assert refresh_lead(1, 0.1) == 0.5


def test_forever_needs_nothing_unless_a_client_overrode_it() -> None:
    year_2318 = NOW + timedelta(days=292 * 365)
    assert refresh_at(year_2318, math.inf, 10, NOW) is None
    assert refresh_at(year_2318, 300, 10, NOW) is None  # someone asked for more: fine
    # A client sent keep_alive "5m": put forever back 21 s before it would unload.
    assert refresh_at(NOW + timedelta(minutes=5), math.inf, 10, NOW) == 279.0
    assert refresh_at(None, math.inf, 10, NOW) is None


def test_backoff_starts_at_zero_and_doubles_to_a_minute() -> None:
    assert [backoff_delay(n) for n in range(9)] == [0, 0.5, 1, 2, 4, 8, 16, 32, 60]


def test_warm_backoff_stays_at_a_minute_after_ten_thousand_failures() -> None:
    # Its own uncapped copy raised OverflowError at attempt 1 025 (~17 h of failures).
    assert backoff_delay(1_025) == 60.0
    assert backoff_delay(10_000) == 60.0


async def test_warm_keeper_survives_thousands_of_failed_warm_ups(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """Each failed warm-up raises the attempt count; 17 h of them must not end n3d.

    The keeper's warm-up is called directly, so no backoff is waited out.
    """

    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": "model requires more system memory"})

    base = "http://ollama.test:11434"
    settings = make_settings(base, warm_models=("llama3",))
    async with OllamaClient(base, transport=httpx.MockTransport(server)) as client:
        models = Models(client, settings, state_path=tmp_path / "w", poll_s=60)
        keeper = models.keeper
        entry = keeper.entries()[0]
        state = keeper._state(entry)
        for _ in range(1_100):
            await keeper._warm(entry, state, "rewarm")
    assert state.attempts == 1_100
    assert 59.0 < state.next_attempt - time.monotonic() <= 60.0
    assert state.last_error is not None and "more system memory" in state.last_error


async def test_failing_warm_ups_back_off(make_settings: MakeSettings, tmp_path: Path) -> None:
    loads: list[float] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/ps":
            return httpx.Response(200, json={"models": []})
        loads.append(1.0)
        return httpx.Response(500, json={"error": "model runner has unexpectedly stopped"})

    events = Events()
    base = "http://ollama.test:11434"
    settings = make_settings(base, warm_models=("llama3",))
    async with OllamaClient(base, transport=httpx.MockTransport(server)) as client:
        models = Models(client, settings, publish=events, state_path=tmp_path / "w", poll_s=0.05)
        async with running(models):
            await wait_until(lambda: len(events.of("warm", action="failed")) >= 3, 5, "3 failures")
    retries = [e["retry_in_s"] for e in events.of("warm", action="failed")]
    assert retries[:3] == [0.5, 1.0, 2.0]
    assert len(loads) == len(retries)  # nothing retried before its delay
    assert "unexpectedly stopped" in events.of("warm", action="failed")[0]["error"]
