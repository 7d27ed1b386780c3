"""Poisoned answers from "Ollama" never end a background task of the model machinery.

The model-list refresh (`_relist`, which `status` counts from), the keep-warm poll of
`/api/ps` and the hand-back of an unwarmed model all run in Models' task group: an
exception escaping any of them ends the daemon. Each must turn a poisoned answer into
error 1010 for whoever asked, and otherwise carry on.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from n3d.api.faults import code_of
from n3d.api.models import counts_result, list_result
from n3d.errors import UnexpectedResponse
from n3d.models import Models
from n3d.ollama.client import OllamaClient

from .models_support import Events, MakeSettings, running, wait_until

BASE = "http://ollama.test:11434"
OVERFLOWING_TAGS = b'{"models":[{"name":"m:latest","size":1e400}]}'
DEEP_PS = b'{"models":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
FOREVER = "2318-04-12T23:47:16.854775807Z"  # a negative keep_alive, as Ollama shows it
TAGS = {"models": [{"name": "llama3:latest", "model": "llama3:latest", "size": 5}]}


class Hostile:
    """A fake Ollama that answers `/api/tags` and `/api/ps` poisoned while ``poisoned``."""

    def __init__(self, loaded: list[str] | None = None) -> None:
        self.poisoned = True
        self.loaded = loaded or []
        self.seen: list[tuple[str, dict[str, object]]] = []

    def ps_rows(self) -> dict[str, object]:
        rows = [{"name": m, "model": m, "size": 1, "expires_at": FOREVER} for m in self.loaded]
        return {"models": rows}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.seen.append((request.url.path, body))
        if request.url.path == "/api/tags":
            if self.poisoned:
                return httpx.Response(200, content=OVERFLOWING_TAGS)
            return httpx.Response(200, json=TAGS)
        if request.url.path == "/api/ps":
            if self.poisoned:
                return httpx.Response(200, content=DEEP_PS)
            return httpx.Response(200, json=self.ps_rows())
        if request.url.path == "/api/show":
            return httpx.Response(200, json={"capabilities": ["completion"]})
        if request.url.path == "/api/generate":
            reason = "unload" if body.get("keep_alive") == 0 else "load"
            if reason == "load":
                self.loaded.append(body["model"])
            return httpx.Response(
                200,
                json={"model": body["model"], "response": "", "done": True, "done_reason": reason},
            )
        return httpx.Response(404, text="404 page not found")

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.seen if p == path)


async def test_poisoned_listings_are_1010_and_every_background_task_survives(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    fake = Hostile()
    settings = make_settings(BASE, warm_models=("llama3",))
    async with OllamaClient(BASE, transport=httpx.MockTransport(fake)) as client:
        models = Models(client, settings, state_path=tmp_path / "w.json", poll_s=0.02)
        async with running(models):
            models.on_server_ready(1)  # starts the background relist and a keep-warm look
            await wait_until(lambda: fake.count("/api/ps") >= 5, 10, "five poisoned polls")
            await wait_until(lambda: fake.count("/api/tags") >= 1, 10, "the relist")
            with pytest.raises(UnexpectedResponse) as info:
                await models.list(refresh=True)
            assert code_of(info.value) == 1010
            with pytest.raises(UnexpectedResponse):
                await models.loaded()
            # never listed, not a made-up 0
            assert counts_result(models.counts())["installed"] is None

            fake.poisoned = False  # the same server answers sanely again: all is well
            assert [m["name"] for m in list_result(await models.list(refresh=True))["models"]] == [
                "llama3:latest"
            ]
            await wait_until(lambda: "llama3:latest" in fake.loaded, 10, "the warm-up")


async def test_an_unreadable_ps_is_not_taken_for_a_server_restart(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    fake = Hostile(loaded=["llama3:latest"])
    fake.poisoned = False
    events = Events()
    settings = make_settings(BASE, warm_models=("llama3",))
    async with OllamaClient(BASE, transport=httpx.MockTransport(fake)) as client:
        models = Models(
            client, settings, publish=events, state_path=tmp_path / "w.json", poll_s=0.02
        )
        async with running(models):
            # Loaded by someone else: the keeper sets its keep_alive once, then rests.
            await wait_until(lambda: fake.count("/api/generate") == 1, 10, "one warm request")
            fake.poisoned = True
            polls = fake.count("/api/ps")
            await wait_until(lambda: fake.count("/api/ps") >= polls + 5, 10, "poisoned polls")
            fake.poisoned = False
            polls = fake.count("/api/ps")
            await wait_until(lambda: fake.count("/api/ps") >= polls + 5, 10, "sane polls")
    assert fake.count("/api/generate") == 1  # no second "set our keep_alive" after a restart
    assert events.of("model.unloaded") == []


async def test_handing_back_with_keep_alive_zero_unloads_instead_of_crashing(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    fake = Hostile(loaded=["llama3:latest"])
    fake.poisoned = False
    settings = make_settings(BASE, warm_models=("llama3",), keep_alive=0)
    async with OllamaClient(BASE, transport=httpx.MockTransport(fake)) as client:
        models = Models(client, settings, state_path=tmp_path / "w.json", poll_s=0.02)
        async with running(models):
            await wait_until(lambda: fake.count("/api/generate") == 1, 10, "the warm request")
            models.apply_settings(make_settings(BASE, warm_models=(), keep_alive=0))
            await wait_until(
                lambda: any(
                    p == "/api/generate" and b.get("keep_alive") == 0 for p, b in fake.seen
                ),
                10,
                "the hand-back as an unload",
            )
            # Still running: another look at /api/ps happens after the hand-back.
            polls = fake.count("/api/ps")
            await wait_until(lambda: fake.count("/api/ps") > polls, 10, "a later poll")


async def test_a_poisoned_pull_line_fails_that_pull_with_1010_and_nothing_else(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    fake = Hostile()
    fake.poisoned = False
    lines = b'{"status":"pulling manifest"}\n{"status":"pulling x","digest":"sha256:ab",'
    lines += b'"total":1e400}\n{"status":"success"}\n'

    def pulls(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/pull":
            return httpx.Response(200, content=lines)
        return fake(request)

    async with OllamaClient(BASE, transport=httpx.MockTransport(pulls)) as client:
        models = Models(client, make_settings(BASE), state_path=tmp_path / "w.json", poll_s=0.02)
        async with running(models):
            with pytest.raises(UnexpectedResponse) as info:
                await models.pull("llama3")
            assert code_of(info.value) == 1010
            assert models.pulls.active() == []
            polls = fake.count("/api/ps")  # the keeper still looks: nothing ended
            await wait_until(lambda: fake.count("/api/ps") > polls, 10, "a later poll")
