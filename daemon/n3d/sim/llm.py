"""The server's side of a runner, as Ollama's `llm/server.go` (v0.13.5) is.

Starting the child (`python -m n3d.sim.runner --model BLOB --port N --ctx-size C`,
in the server's own process group) and waiting for its `/health`; the per-runner
queue (:class:`Slots`, Ollama's `sem`: `OLLAMA_NUM_PARALLEL` requests at once, the
rest wait in arrival order and leave the queue when their client goes away); and
the HTTP calls that carry inference to the runner (`/completion`, `/embedding`)
with Ollama's error texts when the runner dies under them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from n3d.sim.logs import slog

__all__ = [
    "LOAD_FAILED",
    "RunnerError",
    "Slots",
    "completion",
    "embedding",
    "exited_text",
    "set_hung",
    "start_runner",
    "wait_healthy",
]

LOAD_FAILED = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details"
)
_EOF_TEXT = "an error was encountered while running the model: unexpected EOF"


class RunnerError(Exception):
    """The runner failed a request; the message is Ollama's 500 text."""


def exited_text(returncode: int) -> str:
    """`getServerStatus` on a runner that has exited (Go's ExitCode is -1 for a signal)."""
    return f"llama runner process no longer running: {max(returncode, -1)} "


def _free_port() -> int:
    # Ollama picks a runner port the same way: listen on :0, note the port, close.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_runner(blob: Path, num_ctx: int) -> tuple[asyncio.subprocess.Process, int]:
    """Spawn a runner for `blob`; its process and port (not yet healthy)."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "n3d.sim.runner",
        "--model",
        str(blob),
        "--port",
        str(port),
        "--ctx-size",
        str(num_ctx),
    ]
    slog("INFO", "server.go:398", "starting llama server", cmd=" ".join(cmd))
    # No start_new_session: runners share the server's process group, like Ollama's.
    process = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL)
    return process, port


async def wait_healthy(process: asyncio.subprocess.Process, port: int) -> None:
    """Poll the runner's `/health` until it answers; :class:`RunnerError` if it dies first."""
    deadline = time.monotonic() + 30.0
    while process.returncode is None and time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await reader.read()
        writer.close()
        return
    raise RunnerError(LOAD_FAILED)


class Slots:
    """A FIFO semaphore: Ollama's per-runner `semaphore.Weighted(numParallel)`.

    A waiter cancelled (its client went away) leaves the queue without taking a slot.
    """

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


async def _post(
    port: int, path: str, body: dict[str, Any]
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send `POST path` to the runner; its status, and the stream to read the body from."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body, separators=(",", ":")).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    try:
        status_line = await reader.readline()
        while (await reader.readline()).strip():
            pass  # headers: the body runs until the runner closes the connection
        return int(status_line.split(b" ", 2)[1]), reader, writer
    except (ValueError, IndexError):
        writer.close()
        return 0, reader, writer
    except BaseException:
        writer.close()
        raise


async def completion(
    port: int, body: dict[str, Any], on_token: Callable[[str], Awaitable[None]]
) -> dict[str, Any]:
    """Run a completion on the runner: `on_token` per piece; the final (done) line."""
    try:
        status, reader, writer = await _post(port, "/completion", body)
    except OSError:
        raise RunnerError(LOAD_FAILED) from None  # Ollama's "post predict" failure
    try:
        if status != 200:
            raise RunnerError(_EOF_TEXT)
        while line := await reader.readline():
            item = json.loads(line)
            if item.get("content"):
                await on_token(str(item["content"]))
            if item.get("done"):
                return dict(item)
        raise RunnerError(_EOF_TEXT)  # the runner died mid-answer
    except (OSError, ValueError):
        raise RunnerError(_EOF_TEXT) from None
    finally:
        writer.close()


async def embedding(port: int, body: dict[str, Any]) -> dict[str, Any]:
    """One `/embedding` call: `{"embedding": [...], "prompt_eval_count": N}`."""
    failed = RunnerError(f'do embedding request: Post "http://127.0.0.1:{port}/embedding": EOF')
    try:
        status, reader, writer = await _post(port, "/embedding", body)
    except OSError:
        raise failed from None
    try:
        answer = json.loads(await reader.read()) if status == 200 else None
    except (OSError, ValueError):
        answer = None
    finally:
        writer.close()
    if not isinstance(answer, dict):
        raise failed
    return answer


async def set_hung(port: int, hung: bool) -> bool:
    """Tell the runner to stop (or resume) answering; False if it could not be told."""

    async def tell() -> bool:
        status, reader, writer = await _post(port, "/sim/hang", {"hang": hung})
        try:
            await reader.read()
        finally:
            writer.close()
        return status == 200

    try:
        return await asyncio.wait_for(tell(), 1.0)  # a stopped (SIGSTOP) runner cannot answer
    except (OSError, TimeoutError):
        return False
