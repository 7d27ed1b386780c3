"""Clients streaming generates back to back, and what became of each request.

Used by the drills (test_drills.py): each client sends ``POST /api/generate``
(streamed) again and again until told to stop, and every request ends in one
:class:`Outcome`: ``ok`` (200 and Ollama's final object), ``error_after_begin``
(the answer had begun and ended with an ``{"error": ...}`` object, as a broken
stream must), or ``failed`` (anything else: refused, cut silently, an error
before anything began, a timeout). A request never waits longer than
``timeout_s``: a hang is a failure.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

__all__ = ["Load", "Outcome"]


@dataclass
class Outcome:
    kind: str  # ok | error_after_begin | failed
    detail: str = ""
    final: dict[str, Any] | None = None


@dataclass
class Load:
    url: str
    clients: int = 16
    timeout_s: float = 30.0
    model: str = "llama3.2"
    outcomes: list[Outcome] = field(default_factory=list)
    stop: anyio.Event = field(default_factory=anyio.Event)

    def counts(self) -> Counter[str]:
        return Counter(o.kind for o in self.outcomes)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == "failed"]

    async def run(self) -> None:
        """Until :attr:`stop` is set; then every client finishes its request in flight."""
        limits = httpx.Limits(max_connections=self.clients)
        async with (
            httpx.AsyncClient(base_url=self.url, limits=limits) as client,
            anyio.create_task_group() as tg,
        ):
            for n in range(self.clients):
                tg.start_soon(self._client, client, n)

    async def _client(self, client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            prompt = f"client {n} request {i}"
            with anyio.move_on_after(self.timeout_s) as scope:
                outcome = await self._one(client, prompt)
            if scope.cancelled_caught:
                outcome = Outcome("failed", f"no end within {self.timeout_s}s")
            self.outcomes.append(outcome)

    async def _one(self, client: httpx.AsyncClient, prompt: str) -> Outcome:
        body = {"model": self.model, "prompt": prompt}
        try:
            async with client.stream("POST", "/api/generate", json=body, timeout=None) as r:
                if r.status_code != 200:
                    await r.aread()
                    return Outcome("failed", f"{r.status_code} {r.text[:200]}")
                last: dict[str, Any] | None = None
                async for line in r.aiter_lines():
                    if line.strip():
                        last = json.loads(line)
        except (httpx.HTTPError, ValueError) as exc:
            return Outcome("failed", f"{type(exc).__name__}: {exc}")
        if last is None:
            return Outcome("failed", "200 with no object at all")
        if "error" in last:
            return Outcome("error_after_begin", str(last["error"]))
        if last.get("done") is True:
            return Outcome("ok", final=last)
        return Outcome("failed", "the stream ended without its final object")
