"""A scripted fake Ollama behind httpx.MockTransport, for the client tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

BASE_URL = "http://ollama.test:11434"

Handler = Callable[[httpx.Request], httpx.Response]


def ndjson(*objects: Any) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


@dataclass
class FakeOllama:
    """Answers scripted per `METHOD /path` and remembers every request it saw."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, route: str, handler: Handler) -> None:
        self.routes[route] = handler

    def reply(
        self,
        route: str,
        status: int = 200,
        *,
        json_body: Any = None,
        lines: list[Any] | None = None,
        text: str | None = None,
    ) -> None:
        """Script one answer: a JSON object, NDJSON lines, raw text, or an empty body."""
        if lines is not None:
            content = ndjson(*lines)
            headers = {"content-type": "application/x-ndjson"}
        elif json_body is not None:
            content = json.dumps(json_body).encode()
            headers = {"content-type": "application/json; charset=utf-8"}
        else:
            content = (text or "").encode()
            headers = {"content-type": "text/plain; charset=utf-8"}
        self.on(route, lambda request: httpx.Response(status, content=content, headers=headers))

    def fail(self, route: str, exc_type: type[httpx.RequestError], message: str) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            raise exc_type(message, request=request)

        self.on(route, handler)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = f"{request.method} {request.url.path}"
        handler = self.routes.get(route)
        if handler is None and route == "POST /api/show":
            # Unless scripted, every model generates (load() asks before it loads).
            return httpx.Response(200, json={"capabilities": ["completion"]})
        if handler is None:
            return httpx.Response(404, text="404 page not found")
        return handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def last_json(self) -> Any:
        return json.loads(self.last.content)
