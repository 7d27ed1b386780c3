"""An answer too large, too long-lined, compressed or too slow is an error, and n3d's
memory stays bounded while it reads one.

Anyone who binds Ollama's port first is the server n3d talks to. These tests use a
real socket (hostile_http.HostileServer) where the way bytes arrive matters, and
measure the peak RSS of this process around the call: reading a 512 MiB answer
whole, as n3d once did, raises it by more than a gigabyte.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest

from n3d.api.faults import code_of
from n3d.errors import OllamaTimeout, UnexpectedResponse
from n3d.ollama.bodies import MAX_ANSWER_BYTES, MAX_LINE_BYTES, iter_lines
from n3d.ollama.client import OllamaClient
from n3d.ollama.decoding import MAX_VALUES

from .hostile_http import (
    HostileHandler,
    HostileServer,
    MiB,
    endless_body,
    endless_line,
    peak_growth,
    serving,
)
from .ollama_fakes import FakeOllama

# Generous: the cap itself, the chunks in flight and the allocator's slack, never
# the hundreds of MiB of a body read whole (the server sends up to 512 MiB).
SLACK = 96 * MiB


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with serving(HostileServer()) as server:
        yield server


@pytest.fixture
async def real_client(hostile: HostileServer) -> AsyncIterator[OllamaClient]:
    # A quick-call limit far above what reading 64 MiB on a loaded machine takes:
    # these tests are about size, not time.
    async with OllamaClient(hostile.url, timeout_s=120.0) as client:
        yield client


async def hung_up(server: HostileServer, path: str) -> bool:
    """Whether the server saw the client hang up on ``path`` (waits up to a minute)."""
    return await anyio.to_thread.run_sync(server.hung_up(path).wait, 60.0)


@pytest.mark.slow
async def test_an_endless_answer_from_ollama_is_1010_and_memory_stays_bounded(
    hostile: HostileServer, real_client: OllamaClient
) -> None:
    hostile.routes["/api/tags"] = endless_body()
    with peak_growth() as growth, pytest.raises(UnexpectedResponse) as info:
        await real_client.tags()
    assert growth() < MAX_ANSWER_BYTES + SLACK, f"peak RSS rose {growth() / MiB:.0f} MiB"
    assert code_of(info.value) == 1010 and info.value.kind == "ollama_error"
    assert "the answer to /api/tags is larger than 64 MiB" in info.value.message
    assert await hung_up(hostile, "/api/tags"), "n3d should drop the connection, not read on"
    assert hostile.sent["/api/tags"] < hostile.ceiling


@pytest.mark.slow
async def test_a_stream_line_that_never_ends_is_1010_and_memory_stays_bounded(
    hostile: HostileServer, real_client: OllamaClient
) -> None:
    hostile.routes["/api/pull"] = endless_line()
    seen: list[str] = []
    with peak_growth() as growth, pytest.raises(UnexpectedResponse) as info:
        async for progress in real_client.pull("m"):
            seen.append(progress.status)
    assert growth() < MAX_LINE_BYTES + SLACK, f"peak RSS rose {growth() / MiB:.0f} MiB"
    assert seen == ["pulling manifest"]  # the lines before it were read as usual
    assert code_of(info.value) == 1010
    assert "a line of /api/pull is longer than 16 MiB" in info.value.message
    assert await hung_up(hostile, "/api/pull")


@pytest.mark.slow
async def test_an_endless_error_answer_to_a_stream_is_1010_and_memory_stays_bounded(
    hostile: HostileServer, real_client: OllamaClient
) -> None:
    def failing_endlessly(h: HostileHandler) -> None:
        h.head(500)
        h.endless(b'{"error":"')

    hostile.routes["/api/pull"] = failing_endlessly
    with peak_growth() as growth, pytest.raises(UnexpectedResponse) as info:
        async for _ in real_client.pull("m"):
            pass
    assert growth() < MAX_ANSWER_BYTES + SLACK, f"peak RSS rose {growth() / MiB:.0f} MiB"
    assert "the error answer to /api/pull is larger than 64 MiB" in info.value.message


@pytest.mark.slow
async def test_an_answer_declaring_an_oversized_length_is_refused_unread(
    hostile: HostileServer, real_client: OllamaClient
) -> None:
    def declared(h: HostileHandler) -> None:
        h.head(200, 10 * 1024 * MiB)
        h.endless(b'{"models":[{"name":"')

    hostile.routes["/api/tags"] = declared
    with pytest.raises(UnexpectedResponse, match="declares 10240 MiB, more than 64 MiB"):
        await real_client.tags()
    assert await hung_up(hostile, "/api/tags")
    assert hostile.sent["/api/tags"] < 64 * MiB


@pytest.mark.slow
async def test_an_answer_that_dribbles_in_is_a_timeout_not_a_hang(
    hostile: HostileServer,
) -> None:
    # One byte every 0.2 s: each read is well within httpx's per-read timeout, so
    # only a deadline on the whole answer ends it.
    def dribbling(h: HostileHandler) -> None:
        h.head(200)
        for byte in b'{"models":[' + b" " * 10_000:
            if h.server.stop.wait(0.2):
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()

    hostile.routes["/api/tags"] = dribbling
    async with OllamaClient(hostile.url, timeout_s=1.0) as client:
        with pytest.raises(OllamaTimeout) as info:
            await client.tags()
    assert code_of(info.value) == 1005
    assert "did not answer GET /api/tags within 1s" in info.value.message


async def test_an_answer_within_the_caps_is_read_whole(
    client: OllamaClient, fake: FakeOllama
) -> None:
    # /api/show's license and template are the largest texts Ollama sends (tens of
    # KiB); a generated image is a few MiB of base64. Far below the caps.
    license_text = "x" * (8 * MiB)
    body = b'{"license":"' + license_text.encode() + b'","capabilities":["completion"]}'
    fake.on("POST /api/show", lambda request: httpx.Response(200, content=body))
    assert (await client.show("m"))["license"] == license_text

    line = b'{"model":"m","response":"' + b"y" * (4 * MiB) + b'","done":true}\n'
    fake.on("POST /api/generate", lambda request: httpx.Response(200, content=line))
    chunks = [chunk async for chunk in client.generate_stream("m", "hi")]
    assert len(chunks[0].response) == 4 * MiB


@pytest.mark.slow
async def test_a_compressed_answer_is_refused_not_inflated(
    hostile: HostileServer, real_client: OllamaClient
) -> None:
    # 256 MiB of zeros gzip to ~256 KiB: a bomb for a client that inflates what it
    # did not ask for. n3d asks for `identity` and refuses anything else.
    packer = zlib.compressobj(1, wbits=31)
    bomb = b"".join(packer.compress(bytes(MiB)) for _ in range(256)) + packer.flush()

    def compressed(h: HostileHandler) -> None:
        h.head(200, len(bomb), content_encoding="gzip")
        h.wfile.write(bomb)

    hostile.routes["/api/tags"] = compressed
    with peak_growth() as growth, pytest.raises(UnexpectedResponse) as info:
        await real_client.tags()
    assert growth() < 64 * MiB, f"peak RSS rose {growth() / MiB:.0f} MiB"
    assert "the answer to /api/tags is compressed (gzip)" in info.value.message
    assert hostile.headers["/api/tags"]["Accept-Encoding"] == "identity"


async def test_an_answer_of_millions_of_tiny_values_is_refused_before_decoding(
    client: OllamaClient, fake: FakeOllama
) -> None:
    # `{},` is 3 bytes of text and ~70 bytes as a Python dict: 15 MiB of them would
    # decode to ~400 MiB. Counted before decoding instead.
    body = b'{"models":[' + b"{}," * (5 * 1024 * 1024) + b"{}]}"
    fake.on("GET /api/tags", lambda request: httpx.Response(200, content=body))
    with peak_growth() as growth, pytest.raises(UnexpectedResponse) as info:
        await client.tags()
    assert growth() < 96 * MiB, f"peak RSS rose {growth() / MiB:.0f} MiB"
    assert f"more than {MAX_VALUES:,} values" in info.value.message


async def test_lines_split_across_reads_are_joined_and_the_limit_is_per_line() -> None:
    async def reads(*chunks: bytes) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def lines(*chunks: bytes, limit: int = 8) -> list[bytes]:
        return [line async for line in iter_lines(reads(*chunks), what="x", limit=limit)]

    assert await lines(b"ab", b"c\nde", b"f\n\ngh") == [b"abc", b"def", b"", b"gh"]
    assert await lines(b"12345678\n", b"1234", b"5678") == [b"12345678", b"12345678"]
    assert await lines(b"1234\r\n") == [b"1234\r"]  # JSON reads the \r as whitespace
    with pytest.raises(ValueError, match="x is longer than"):
        await lines(b"123456789\nshort\n")  # too long, though its break came with it
    with pytest.raises(ValueError, match="x is longer than"):
        await lines(b"1234", b"5678", b"9")  # too long, and still no break
