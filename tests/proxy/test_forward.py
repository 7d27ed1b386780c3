"""The request path in one process: transparent forwarding, hold, refuse, retry, broken streams.

Each test writes the upstream's routes (a stand-in for Ollama) and drives the
proxy with httpx; the server's state is moved by hand (conftest.Server).
"""

from __future__ import annotations

import json

import anyio
import httpx
from aiohttp import web

from n3d.state import ServerState

from .conftest import Harness

FINAL = {
    "model": "llama3.2",
    "created_at": "2026-12-06T12:00:00Z",
    "response": "",
    "done": True,
    "done_reason": "stop",
    "total_duration": 9_000_000,
    "load_duration": 1000,
    "prompt_eval_count": 7,
    "prompt_eval_duration": 1000,
    "eval_count": 3,
    "eval_duration": 30_000_000,
}


def _chunk(text: str) -> bytes:
    line = {"model": "llama3.2", "created_at": "x", "response": text, "done": False}
    return json.dumps(line).encode() + b"\n"


async def _tags(request: web.Request) -> web.Response:
    return web.json_response({"models": []})


async def test_status_headers_and_body_come_back_as_they_came(harness: Harness) -> None:
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(
            method=request.method,
            path=request.path_qs,
            header=request.headers.get("X-Client"),
            body=await request.read(),
        )
        return web.Response(
            status=418,
            body=b'{"error":"teapot"}',
            headers={"Content-Type": "application/json; charset=utf-8", "X-Upstream": "yes"},
        )

    harness.upstream.router.add_route("PATCH", "/api/anything/{tail:.*}", handler)
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client:
        reply = await client.patch(
            "/api/anything/x%2Fy?q=1&q=2", content=b"raw \x00 bytes", headers={"X-Client": "c"}
        )
    assert (reply.status_code, reply.content) == (418, b'{"error":"teapot"}')
    assert reply.headers["x-upstream"] == "yes"
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    assert seen == {
        "method": "PATCH",
        "path": "/api/anything/x%2Fy?q=1&q=2",
        "header": "c",
        "body": b"raw \x00 bytes",
    }
    (event,) = harness.requests()
    assert (event["route"], event["status"], event["method"]) == ("other", 418, "PATCH")


async def test_each_ndjson_line_arrives_before_the_next_is_written(harness: Harness) -> None:
    """No buffering: the upstream writes line 2 only after the client has read line 1."""
    client_read_first = anyio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await reply.prepare(request)
        await reply.write(_chunk("Hello"))
        with anyio.fail_after(5):
            await client_read_first.wait()
        await reply.write(_chunk(" world"))
        await reply.write(json.dumps(FINAL).encode() + b"\n")
        await reply.write_eof()
        return reply

    harness.upstream.router.add_post("/api/generate", handler)
    await harness.begin()  # type: ignore[attr-defined]
    lines = []
    async with (
        harness.client() as client,
        client.stream("POST", "/api/generate", json={"model": "llama3.2", "prompt": "hi"}) as r,
    ):
        async for line in r.aiter_lines():
            lines.append(json.loads(line))
            client_read_first.set()
    assert [line.get("response") for line in lines] == ["Hello", " world", ""]
    (event,) = harness.requests()
    assert event["route"] == "/api/generate" and event["model"] == "llama3.2"
    assert event["stream"] is True and event["chunks"] == 3
    assert event["tokens"] == {"prompt": 7, "completion": 3, "total": 10}
    assert event["tokens_per_second"] == 100.0  # eval_count / eval_duration
    assert event["ttft_s"] is not None and event["ttft_s"] <= event["duration_s"]
    assert event["retried"] is False and event["held_s"] == 0.0
    assert harness.outputs and set(harness.outputs) == {"llama3.2"}  # liveness evidence
    assert harness.rates == []  # three tokens: too few for liveness to judge a rate by


async def test_a_finished_generation_tells_liveness_its_decode_rate(harness: Harness) -> None:
    answers = [
        {**FINAL, "eval_count": 16, "eval_duration": 200_000_000},  # 80 tok/s
        {**FINAL, "eval_count": 7, "eval_duration": 10_000_000},  # too few tokens
        {**FINAL, "eval_count": 16, "eval_duration": 0},  # no duration
        {"error": "model runner has unexpectedly stopped"},  # not a good end
    ]

    async def handler(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await reply.prepare(request)
        await reply.write(_chunk("Hello"))
        await reply.write(json.dumps(answers.pop(0)).encode() + b"\n")
        await reply.write_eof()
        return reply

    harness.upstream.router.add_post("/api/generate", handler)
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client:
        for _ in range(4):
            reply = await client.post("/api/generate", json={"model": "llama3.2", "prompt": "hi"})
            assert reply.status_code == 200
    assert harness.rates == [("llama3.2", 80.0, 1)]  # alone
    assert len(harness.requests()) == 4


async def test_a_generation_reports_the_generations_that_ran_beside_it(harness: Harness) -> None:
    # Liveness judges rate × concurrency: the most generations in flight to the server
    # when the request was sent and when it ended, itself included; other routes not.
    arrived = {name: anyio.Event() for name in ("a", "b", "c", "d", "tags")}
    release = {name: anyio.Event() for name in arrived}
    ended = {name: anyio.Event() for name in arrived}
    ms = {"a": 200, "b": 400, "c": 800, "d": 100}  # 16 tokens: 80, 40, 20, 160 tok/s

    async def generate(request: web.Request) -> web.StreamResponse:
        name = (await request.json())["prompt"]
        arrived[name].set()
        await release[name].wait()
        reply = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await reply.prepare(request)
        final = {**FINAL, "eval_count": 16, "eval_duration": ms[name] * 1_000_000}
        await reply.write(_chunk("Hello") + json.dumps(final).encode() + b"\n")
        await reply.write_eof()
        return reply

    async def tags(request: web.Request) -> web.Response:
        arrived["tags"].set()
        await release["tags"].wait()
        return web.json_response({"models": []})

    harness.upstream.router.add_post("/api/generate", generate)
    harness.upstream.router.add_get("/api/tags", tags)
    await harness.begin()  # type: ignore[attr-defined]

    async def send(client: httpx.AsyncClient, name: str) -> None:
        if name == "tags":
            assert (await client.get("/api/tags")).status_code == 200
        else:
            body = {"model": "llama3.2", "prompt": name}
            assert (await client.post("/api/generate", json=body)).status_code == 200
        ended[name].set()

    async with harness.client() as client, anyio.create_task_group() as tg:
        for name in ("a", "tags", "b", "c"):  # a alone; b and c sent while it runs
            tg.start_soon(send, client, name)
            await arrived[name].wait()
        for name in ("a", "c", "b", "tags"):
            release[name].set()
            await ended[name].wait()
        tg.start_soon(send, client, "d")  # alone again
        release["d"].set()
        await ended["d"].wait()
    assert harness.rates == [
        ("llama3.2", 80.0, 3),  # sent alone, ended beside b and c (the tags request is none)
        ("llama3.2", 20.0, 3),  # sent beside a and b, ended beside b
        ("llama3.2", 40.0, 2),  # sent beside a, ended alone
        ("llama3.2", 160.0, 1),
    ]


async def test_a_large_upload_streams_through_and_is_never_held_whole(harness: Harness) -> None:
    first_arrived = anyio.Event()
    received = [0]

    async def handler(request: web.Request) -> web.Response:
        async for chunk in request.content.iter_any():
            received[0] += len(chunk)
            first_arrived.set()
        return web.Response(status=201)

    harness.upstream.router.add_post("/api/blobs/{digest}", handler)
    await harness.begin()  # type: ignore[attr-defined]
    piece = b"x" * 65536

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(24):  # 1.5 MiB: past what the proxy reads whole
            yield piece
        with anyio.fail_after(5):  # the upstream has bytes before the client is done
            await first_arrived.wait()
        for _ in range(40):
            yield piece

    async with harness.client() as client:
        reply = await client.post("/api/blobs/sha256:" + "a" * 64, content=body())
    assert reply.status_code == 201
    assert received[0] == 64 * 65536
    (event,) = harness.requests()
    assert event["route"] == "/api/blobs/:digest"  # never the raw path with its digest


async def test_held_while_the_server_starts_then_sent(harness: Harness) -> None:
    harness.upstream.router.add_get("/api/tags", _tags)
    await harness.begin()  # type: ignore[attr-defined]
    harness.server.set(ServerState.STARTING)
    async with harness.client() as client, anyio.create_task_group() as tg:
        replies: list[httpx.Response] = []

        async def ask() -> None:
            replies.append(await client.get("/api/tags"))

        tg.start_soon(ask)
        await anyio.sleep(0.2)
        assert not replies  # held
        (row,) = harness.proxy.requests()
        assert row.state == "held"
        harness.server.set(ServerState.RUNNING)
    assert replies[0].json() == {"models": []}
    (event,) = harness.requests()
    assert event["held_s"] >= 0.15 and event["status"] == 200


async def test_503_at_once_when_fatal_or_stopped_by_a_user(harness: Harness) -> None:
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client:
        harness.server.set(ServerState.FATAL, "failed to start 5 times in 300s")
        fatal = await client.get("/api/tags")
        harness.server.set(ServerState.STOPPED, "server.stop")
        stopped = await client.get("/api/tags")
    assert fatal.status_code == 503 == stopped.status_code
    assert fatal.headers["content-type"] == "application/json; charset=utf-8"
    assert "is fatal: failed to start 5 times" in fatal.json()["error"]
    assert "Suggestion: " in fatal.json()["error"] and "\n" not in fatal.json()["error"]
    assert "start it with: n3ctl start" in stopped.json()["error"]
    assert [e["status"] for e in harness.requests()] == [503, 503]


async def test_a_hold_that_outlasts_hold_timeout_is_a_503(harness: Harness) -> None:
    await harness.begin()  # type: ignore[attr-defined]
    harness.options["hold_timeout_s"] = 0.2
    harness.server.set(ServerState.BACKOFF, "exit code 1")
    async with harness.client() as client:
        reply = await client.get("/api/tags")
    assert reply.status_code == 503
    assert "did not become ready within 0.2" in reply.json()["error"]


async def test_a_request_that_never_began_is_sent_once_more_after_the_restart(
    harness: Harness,
) -> None:
    attempts = [0]

    async def handler(request: web.Request) -> web.StreamResponse:
        attempts[0] += 1
        await request.read()
        if attempts[0] == 1:  # serve dies before its first byte: the connection just ends
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError
        return web.json_response(FINAL)

    harness.upstream.router.add_post("/api/generate", handler)
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client, anyio.create_task_group() as tg:
        replies: list[httpx.Response] = []

        async def ask() -> None:
            body = {"model": "llama3.2", "prompt": "hi", "stream": False}
            replies.append(await client.post("/api/generate", json=body))

        tg.start_soon(ask)
        await anyio.sleep(0.2)
        assert not replies  # held for the restart
        harness.server.restarted()
    assert replies[0].status_code == 200 and attempts[0] == 2
    (event,) = harness.requests()
    assert event["retried"] is True and event["tokens"]["completion"] == 3


async def test_routes_with_side_effects_are_never_sent_twice(harness: Harness) -> None:
    attempts = [0]

    async def handler(request: web.Request) -> web.Response:
        attempts[0] += 1
        assert request.transport is not None
        request.transport.close()
        raise ConnectionResetError

    harness.upstream.router.add_route("DELETE", "/api/delete", handler)
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client:
        reply = await client.request("DELETE", "/api/delete", json={"model": "m"})
    assert reply.status_code == 502 and attempts[0] == 1
    assert "Could not reach Ollama server" in reply.json()["error"]


async def test_a_stream_that_breaks_ends_with_an_error_object(harness: Harness) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await reply.prepare(request)
        await reply.write(_chunk("Hello"))
        await reply.drain()
        await anyio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()  # serve killed mid-stream
        return reply

    harness.upstream.router.add_post("/api/chat", handler)
    await harness.begin()  # type: ignore[attr-defined]
    async with (
        harness.client() as client,
        client.stream("POST", "/api/chat", json={"model": "llama3.2"}) as r,
    ):
        lines = [json.loads(line) async for line in r.aiter_lines()]
    assert r.status_code == 200
    assert lines[0]["response"] == "Hello"
    assert "stopped while answering" in lines[-1]["error"]
    (event,) = harness.requests()
    assert "stopped while answering" in event["error"] and event["chunks"] == 1


async def test_an_sse_stream_that_breaks_ends_with_an_error_event(harness: Harness) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await reply.prepare(request)
        await reply.write(b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n')
        await reply.drain()
        await anyio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return reply

    harness.upstream.router.add_post("/v1/chat/completions", handler)
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client:
        reply = await client.post("/v1/chat/completions", json={"model": "m", "stream": True})
    text = reply.text
    assert text.startswith('data: {"choices"')
    assert "\nevent: error\ndata: " in text and text.endswith("\n\n")
    data = json.loads(text.split("event: error\ndata: ", 1)[1])
    assert "stopped while answering" in data["error"]["message"]


async def test_requests_cancel_ends_a_stream_with_an_error_and_a_held_one_with_503(
    harness: Harness,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await reply.prepare(request)
        for word in ("a", "b", "c", "d", "e", "f", "g", "h"):
            await reply.write(_chunk(word))
            await anyio.sleep(0.1)
        return reply

    harness.upstream.router.add_post("/api/generate", handler)
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client, anyio.create_task_group() as tg:
        streamed: list[dict[str, object]] = []

        async def stream() -> None:
            async with client.stream("POST", "/api/generate", json={"model": "llama3.2"}) as r:
                streamed.extend([json.loads(line) async for line in r.aiter_lines()])

        tg.start_soon(stream)
        await anyio.sleep(0.25)
        (row,) = harness.proxy.requests()
        assert row.state == "streaming" and row.tokens_so_far() is not None
        assert harness.proxy.cancel(row.id)
    assert "cancelled through n3d" in str(streamed[-1]["error"])
    assert len(streamed) < 8
    harness.server.set(ServerState.STARTING)
    async with harness.client() as client, anyio.create_task_group() as tg:
        held: list[httpx.Response] = []

        async def ask() -> None:
            held.append(await client.post("/api/generate", json={"model": "m"}))

        tg.start_soon(ask)
        await anyio.sleep(0.1)
        (row,) = harness.proxy.requests()
        assert harness.proxy.cancel(row.id)
    assert held[0].status_code == 503 and "cancelled" in held[0].json()["error"]
    assert not harness.proxy.cancel("r999")


async def test_drain_waits_for_requests_in_flight_and_holds_new_ones(harness: Harness) -> None:
    release = anyio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": 1})

    harness.upstream.router.add_get("/api/slow", slow)
    harness.upstream.router.add_get("/api/tags", _tags)
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client, anyio.create_task_group() as tg:
        done: list[str] = []
        slow_done = anyio.Event()

        async def get(path: str) -> None:
            await client.get(path)
            done.append(path)
            if path == "/api/slow":
                slow_done.set()

        tg.start_soon(get, "/api/slow")
        await anyio.sleep(0.1)
        drained = anyio.Event()

        async def drain() -> None:
            await harness.proxy.drain(5.0)
            drained.set()

        tg.start_soon(drain)
        await anyio.sleep(0.1)
        tg.start_soon(get, "/api/tags")  # arrives during the drain: held
        await anyio.sleep(0.1)
        assert not drained.is_set() and done == []
        release.set()
        await drained.wait()
        with anyio.fail_after(2):  # its last bytes are on their way to the client
            await slow_done.wait()
        assert done == ["/api/slow"]
        harness.server.set(ServerState.STOPPING)  # the planned restart begins
        await anyio.sleep(0.1)
        assert done == ["/api/slow"]
        harness.server.restarted()
    assert done == ["/api/slow", "/api/tags"]


async def test_metrics_on_the_listener_is_n3ds_not_forwarded(harness: Harness) -> None:
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client:
        reply = await client.get("/metrics")
    assert reply.text == "n3d_test 1.0\n"
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert harness.requests() == []
