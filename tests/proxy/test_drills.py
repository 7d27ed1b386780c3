"""The request path with real processes: n3d run --simulate with [proxy] listen, and clients.

- Restart under load: 16 clients streaming generates back to back through the
  proxy while `n3ctl restart` runs five times: no request fails. The same drill
  straight to the simulator fails requests (the figure is printed beside it).
- serve SIGKILLed five times under load: every request that had not begun
  succeeds after the restart, every stream that had begun ends with an
  ``{"error": ...}`` object, none hangs.
- `request` events whose tokens and tokens/s are the simulator's final objects'.
- GET /metrics and `n3ctl metrics --prometheus` parse with prometheus_client's parser.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from n3d.testing import DaemonProcess, wait_until
from n3d.testing.simulator import free_port

from .load import Load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
N3CTL = [sys.executable, "-c", "from n3d.ctl import main; raise SystemExit(main())"]
# 16 clients stream at once, as the drills mean: since the simulator queues as Ollama
# does (OLLAMA_NUM_PARALLEL, default 1), a request could otherwise wait in serve's
# queue through two kills, and "sent once more" cannot save a request killed twice.
SIM_ENV = {
    "OLLAMA_SIM_MODELS_PRELOAD": "llama3.2",
    "OLLAMA_SIM_TOKEN_SECONDS": "0.01",
    "OLLAMA_NUM_PARALLEL": "16",
}


@pytest.fixture
def proxied(short_dir: Path) -> Any:
    made: list[DaemonProcess] = []

    def make() -> tuple[DaemonProcess, str]:
        home = short_dir / f"d{len(made)}"
        home.mkdir(mode=0o700)
        listen = f"127.0.0.1:{free_port()}"
        proxy = {"listen": listen, "hold_timeout": 30, "drain_timeout": 10}
        d = DaemonProcess(home, config={"proxy": proxy}, **SIM_ENV)
        made.append(d)
        d.start().wait_ready()
        return d, f"http://{listen}"

    yield make
    for d in made:
        d.cleanup()


def _n3ctl(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*N3CTL, "--socket", str(d.socket), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=d.env,
    )


async def _under_load(
    url: str, drill: Callable[[], None], times: int, pause_s: float = 0.5
) -> Load:
    """Run ``drill`` ``times`` times (in a thread) while 16 clients stream through ``url``."""
    load = Load(url)
    async with anyio.create_task_group() as tg:
        tg.start_soon(load.run)
        await anyio.sleep(1.0)
        for _ in range(times):
            await anyio.to_thread.run_sync(drill)
            await anyio.sleep(pause_s)
        load.stop.set()
    return load


async def test_restarts_under_load_fail_no_proxied_request(proxied: Any) -> None:
    d, url = proxied()

    def restart() -> None:
        result = _n3ctl(d, "restart")
        assert result.returncode == 0, result.stderr

    through = await _under_load(url, restart, 5)
    direct = await _under_load(f"http://127.0.0.1:{d.port}", restart, 5)
    print(f"\nrestart x5 through n3d: {dict(through.counts())}; straight: {dict(direct.counts())}")
    assert through.counts()["ok"] > 50
    assert through.failures() == [] and through.counts()["error_after_begin"] == 0
    assert direct.failures(), "the same drill straight to the simulator fails requests"
    assert d.call("status")["server"]["restarts"] == 10


async def test_serve_sigkilled_under_load_retries_what_had_not_begun(proxied: Any) -> None:
    d, url = proxied()

    def kill_serve() -> None:
        before = d.call("status")["server"]
        os.kill(before["pid"], signal.SIGKILL)
        wait_until(
            lambda: (
                (s := d.call("status")["server"])["state"] == "running"
                and s["pid"] != before["pid"]
            ),
            within_s=20,
            what="serve restarted after SIGKILL",
        )

    # Serve comes back empty: each kill costs the model's load and the streams it cut,
    # so the clients get a while between kills to finish requests again.
    load = await _under_load(url, kill_serve, 5, pause_s=1.5)
    counts = load.counts()
    print(f"\nSIGKILL x5 through n3d: {dict(counts)}")
    assert load.failures() == [], load.failures()[:3]
    assert counts["ok"] > 50
    for outcome in load.outcomes:
        if outcome.kind == "error_after_begin":
            assert "stopped while answering" in outcome.detail
    retried = [e for e in d.events("request") if e.get("retried")]
    assert all(e["status"] == 200 for e in retried)


async def test_request_events_carry_the_simulators_own_counts(proxied: Any) -> None:
    d, url = proxied()
    finals = []
    async with httpx.AsyncClient(base_url=url) as client:
        for i in range(5):
            body = {"model": "llama3.2", "prompt": f"count {i}", "stream": i % 2 == 0}
            reply = await client.post("/api/generate", json=body, timeout=30)
            finals.append(httpx.Response(200, content=reply.content.splitlines()[-1]).json())
    events = wait_until(lambda: len(d.events("request")) >= 5 and d.events("request"))
    for final, event in zip(finals, events, strict=True):
        assert event["route"] == "/api/generate" and event["model"] == "llama3.2"
        assert event["tokens"] == {
            "prompt": final["prompt_eval_count"],
            "completion": final["eval_count"],
            "total": final["prompt_eval_count"] + final["eval_count"],
        }
        rate = final["eval_count"] / (final["eval_duration"] / 1e9)
        assert event["tokens_per_second"] == pytest.approx(rate, abs=0.001)
        assert event["status"] == 200 and event["server"] == "default"
        assert event["ttft_s"] is not None


async def test_prometheus_text_parses_the_same_from_both_doors(proxied: Any) -> None:
    d, url = proxied()
    async with httpx.AsyncClient(base_url=url) as client:
        await client.post("/api/generate", json={"model": "llama3.2", "prompt": "hi"}, timeout=30)
        scraped = (await client.get("/metrics")).text
    printed = _n3ctl(d, "metrics", "--prometheus")
    assert printed.returncode == 0, printed.stderr
    names = {f.name: f.type for f in text_string_to_metric_families(scraped)}
    again = {f.name: f.type for f in text_string_to_metric_families(printed.stdout)}
    assert names.items() <= again.items()
    assert names["ollama_request_duration_seconds"] == "histogram"
    assert names["ollama_tokens_completion"] == "counter"
    assert names["ollama_requests_in_flight"] == "gauge"
    requests = _n3ctl(d, "--json", "requests")
    assert requests.returncode == 0 and '"requests": []' in requests.stdout
