"""The keeper's timing rules as pure functions, then its backoff and refreshes on a clock
the test moves by hand (so no rule waits in real time, and none can be early on a busy
machine)."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx

from n3d.models import Models
from n3d.models.warm_policy import backoff_delay, poll_interval, refresh_at, refresh_lead
from n3d.ollama.client import OllamaClient
from n3d.ollama.duration import parse_keep_alive

from .models_support import Events, MakeSettings, ManualClock, running, wait_until

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
        clock = ManualClock()
        models = Models(client, settings, state_path=tmp_path / "w", poll_s=60, clock=clock)
        keeper = models.keeper
        entry = keeper.entries()[0]
        state = keeper._state(entry)
        for _ in range(1_100):
            await keeper._warm(entry, state, "rewarm")
    assert state.attempts == 1_100
    assert state.next_attempt - clock() == 60.0
    assert state.last_error is not None and "more system memory" in state.last_error


async def test_failing_warm_ups_back_off(make_settings: MakeSettings, tmp_path: Path) -> None:
    clock = ManualClock()
    loads: list[float] = []  # the clock at each load request
    looks: list[float] = []  # ... and at each look at /api/ps

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/ps":
            looks.append(clock())
            return httpx.Response(200, json={"models": []})
        loads.append(clock())
        return httpx.Response(500, json={"error": "model runner has unexpectedly stopped"})

    events = Events()

    def failed() -> list[dict[str, Any]]:
        return events.of("warm", action="failed")

    base = "http://ollama.test:11434"
    settings = make_settings(base, warm_models=("llama3",))
    async with OllamaClient(base, transport=httpx.MockTransport(server)) as client:
        models = Models(
            client, settings, publish=events, state_path=tmp_path / "w", poll_s=0.05,
            clock=clock, wall=clock.wall,
        )
        async with running(models):
            await wait_until(lambda: len(failed()) == 1, 5, "the first failure")
            for count in (1, 2):
                enough = len(looks) + 3
                await wait_until(lambda n=enough: len(looks) >= n, 5, "three more looks")
                assert len(failed()) == count  # nothing retried before its delay
                clock.advance(failed()[-1]["retry_in_s"])
                await wait_until(lambda n=count: len(failed()) > n, 5, "the retry when due")
    retries = [e["retry_in_s"] for e in failed()]
    assert retries[:3] == [0.5, 1.0, 2.0]
    assert len(loads) == len(retries)  # nothing retried before its delay
    assert [b - a for a, b in itertools.pairwise(loads)] == retries[:2]  # each when due
    assert "unexpectedly stopped" in failed()[0]["error"]


class KeepAliveOllama:
    """A fake Ollama on the test's clock: a load keeps ``llama3`` for the keep_alive it
    asks for, and `/api/ps` shows it with its expiry until then."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.expires: float | None = None  # clock seconds
        self.loads: list[float] = []
        self.expired = False  # a look found it gone: the refresh came too late

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.clock()
        if self.expires is not None and now >= self.expires:
            self.expires, self.expired = None, True
        if request.url.path == "/api/ps":
            rows = []
            if self.expires is not None:
                at = ManualClock.EPOCH + timedelta(seconds=self.expires)
                expires_at = at.isoformat().replace("+00:00", "Z")
                rows = [{"name": "llama3:latest", "size": 1, "expires_at": expires_at}]
            return httpx.Response(200, json={"models": rows})
        if request.url.path == "/api/show":
            return httpx.Response(200, json={"capabilities": ["completion"]})
        body = json.loads(request.content)
        self.loads.append(now)
        self.expires = now + (parse_keep_alive(body["keep_alive"]) or 0.0)
        reply = {"model": body["model"], "response": "", "done": True, "done_reason": "load"}
        return httpx.Response(200, json=reply)


async def test_a_finite_keep_alive_is_refreshed_before_it_expires_once_per_period(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    # keep_alive 1 min, polls every 10 s: refresh lead = min(60/2, 2*10 + 1) = 21 s, so a
    # refresh is due 39 s after each load; the test looks every 5 s for 4 minutes.
    clock = ManualClock()
    ollama = KeepAliveOllama(clock)
    events = Events()
    base = "http://ollama.test:11434"
    settings = make_settings(base, warm_models=("llama3",), warm_keep_alive="1m")
    async with OllamaClient(base, transport=httpx.MockTransport(ollama)) as client:
        models = Models(
            client, settings, publish=events, state_path=tmp_path / "w", poll_s=10,
            clock=clock, wall=clock.wall,
        )
        async with running(models):
            await wait_until(lambda: len(ollama.loads) == 1, 5, "the first warm-up")
            for _ in range(48):
                clock.advance(5)
                models.keeper.poke()
                with anyio.fail_after(5):
                    await anyio.wait_all_tasks_blocked()  # the look, and any warm-up, done
    gaps = [b - a for a, b in itertools.pairwise(ollama.loads)]
    assert len(gaps) >= 5  # refreshed, several times
    assert all(39 <= gap <= 39 + 5 for gap in gaps), gaps  # when due, at the next look
    assert not ollama.expired
    assert not events.of("model.unloaded")
