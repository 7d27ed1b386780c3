"""The installed n3ctl against n3d's real RPC server (n3d.rpc) with a small method table.

The fake daemon proves n3ctl's own behaviour; this proves it speaks to the real
server: framing, `$/progress` for its `workDoneToken`, `$/cancelRequest` naming
the right request (the handler is really cancelled), `event` broadcasts, and
application errors' ``data`` as n3d's errors produce it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from n3d.errors import OllamaError
from n3d.rpc import Context, MethodTable, Param, RpcServer

from . import samples
from .conftest import N3CTL, clean_env, run_ctl


@dataclass
class Seen:
    cancelled: list[str] = field(default_factory=list)


def _table(seen: Seen) -> MethodTable:
    table = MethodTable()

    @table.method("status")
    async def status(ctx: Context, p: dict[str, Any]) -> Any:
        return samples.STATUS

    @table.method("models.pull", Param("model", str, True))
    async def pull(ctx: Context, p: dict[str, Any]) -> Any:
        for value in samples.PULL_PROGRESS[:-1]:
            await ctx.progress(value)
        if p["model"] == "slow":
            try:
                await anyio.sleep(30)
            except anyio.get_cancelled_exc_class():
                seen.cancelled.append(p["model"])
                raise
        await ctx.progress(samples.PULL_PROGRESS[-1])
        return {"model": p["model"], "status": "success", "duration_s": 0.5}

    @table.method("models.delete", Param("model", str, True))
    async def delete(ctx: Context, p: dict[str, Any]) -> Any:
        raise OllamaError.model_missing(p["model"], "http://127.0.0.1:11434")

    @table.method("events.subscribe", Param("topics", list))
    async def subscribe(ctx: Context, p: dict[str, Any]) -> Any:
        ctx.subscribe(p.get("topics"))
        return {"topics": p.get("topics")}

    return table


@dataclass
class Served:
    server: RpcServer
    portal: BlockingPortal
    seen: Seen
    env: dict[str, str]


@pytest.fixture
def served(short_dir: Path) -> Iterator[Served]:
    seen = Seen()
    path = short_dir / "n3d.sock"
    with start_blocking_portal("asyncio") as portal:
        server = RpcServer(path, _table(seen), env={})
        future, _ = portal.start_task(server.run)
        try:
            yield Served(server, portal, seen, clean_env(N3D_SOCKET=str(path)))
        finally:
            future.cancel()


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_status_both_forms(served: Served) -> None:
    human = run_ctl("status", env=served.env)
    assert human.code == 0 and human.out.startswith("● ollama - the Ollama server under n3d\n")
    machine = run_ctl("--json", "status", env=served.env)
    assert json.loads(machine.out) == samples.STATUS


def test_pull_progress_arrives_for_our_token(served: Served) -> None:
    result = run_ctl("--json", "pull", "qwen2:0.5b", env=served.env)
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert lines[:-1] == samples.PULL_PROGRESS
    assert lines[-1]["status"] == "success"


def test_ctrl_c_cancels_the_request_in_the_real_server(served: Served) -> None:
    proc = subprocess.Popen(
        [str(N3CTL), "--json", "pull", "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=served.env,
        preexec_fn=_sigint_default,
    )
    assert proc.stdout is not None
    for _ in samples.PULL_PROGRESS[:-1]:
        proc.stdout.readline()  # every progress value before the wait has arrived
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "the download may continue in the daemon" in err
    deadline = time.monotonic() + 5
    while not served.seen.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert served.seen.cancelled == ["slow"]


def test_an_ollama_error_reads_like_the_seed(served: Served) -> None:
    result = run_ctl("rm", "llama3:8b", env=served.env)
    assert result.code == 1
    assert result.err == (
        "Ollama model 'llama3:8b' is not available locally.\n"
        "Model: llama3:8b\n"
        "Server: http://127.0.0.1:11434\n\n"
        "Suggestion: Run: ollama pull llama3:8b\n"
        "Or enable auto_pull_model in your configuration.\n"
    )


def test_events_from_broadcasts(served: Served) -> None:
    proc = subprocess.Popen(
        [str(N3CTL), "--json", "events", "--topic", "warm"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=served.env,
        preexec_fn=_sigint_default,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 10
    # broadcast() counts the subscribers it reached: 0 until the subscription landed.
    while not served.portal.call(served.server.broadcast, "warm", {"model": "llama3:8b"}):
        assert time.monotonic() < deadline, "n3ctl never subscribed"
        time.sleep(0.02)
    line = proc.stdout.readline()
    served.portal.call(served.server.broadcast, "health", {"ok": True})  # not our topic
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert json.loads(line) == {"topic": "warm", "model": "llama3:8b"}
    assert rest == ""
