"""Warm benefit: the first `/api/generate` on a model n3d keeps warm against a cold one.

    .venv/bin/python bench/warm.py [--runs 7] [--load-seconds 3]

A real ``n3d run --simulate`` (``n3d.testing.DaemonProcess``) with the default
``health_check_interval`` (30 s) keeps ``llama3.2`` warm (``[warm].models``,
warm ``keep_alive = -1``, the default); ``phi3`` is installed too but not warm.
The simulator loads a model in ``--load-seconds`` (default 3 s) and generates a
chunk every 10 ms (its default).

Why 3 s: research/ollama.md gives no load-time figure, so it is an assumption,
on the low side: a cold load reads the whole model (2.0 GB for llama3.2 3B
Q4_K_M) and starts a runner; Ollama's author put a 7B model's first-prompt
delay on an M2 Pro at about 10 s, all of it loading (ollama/ollama#121), and
editors report first-question loads of tens of seconds. The warm figure does
not depend on it; the cold one grows with it (``--load-seconds`` to try others).

Each run is what an editor does: ask n3d for ``status`` (the server's
``base_url``, that it is running, and that the model is loaded), then send its
first request straight to Ollama over a new HTTP connection: ``/api/generate``
with a short prompt, ``stream: false`` and ``options.num_predict: 8`` (both
models then produce 8 tokens, so the difference is the load alone; num_predict
is not a runner option, so it causes no reload). Warm and cold runs alternate,
starting with either in turn; after a cold run the model is unloaded
(``keep_alive: 0``) and the script waits until `/api/ps` no longer lists it.
Printed: wall time of the request (median, min, max), the ``load_duration``
Ollama reported, and the cold/warm ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from n3d.testing import DaemonProcess, wait_until

WARM_MODEL, COLD_MODEL = "llama3.2", "phi3"
PROMPT = "Name one colour of the sea."


def _post(url: str, body: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        result: dict[str, Any] = json.loads(reply.read())
    return result


def _loaded(base_url: str) -> set[str]:
    with urllib.request.urlopen(base_url + "/api/ps", timeout=10) as reply:
        return {m["name"].removesuffix(":latest") for m in json.loads(reply.read())["models"]}


def first_request(daemon: DaemonProcess, model: str) -> tuple[float, float]:
    """Ask n3d, then generate once: (wall seconds of the request, load_duration seconds)."""
    status = daemon.call("status")
    if status["server"]["state"] != "running":
        raise RuntimeError(f"server not running: {status['server']}")
    base_url = status["server"]["base_url"]
    body = {"model": model, "prompt": PROMPT, "stream": False, "options": {"num_predict": 8}}
    started = time.perf_counter()
    reply = _post(base_url + "/api/generate", body)
    took = time.perf_counter() - started
    if not reply.get("done"):
        raise RuntimeError(f"unexpected reply: {reply}")
    return took, reply.get("load_duration", 0) / 1e9


def unload(base_url: str, model: str) -> None:
    _post(base_url + "/api/generate", {"model": model, "keep_alive": 0})
    wait_until(lambda: model not in _loaded(base_url), 30, f"{model} to unload")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="requests per model")
    parser.add_argument("--load-seconds", type=float, default=3.0, help="simulated load time")
    args = parser.parse_args()
    config = {
        "ollama": {"health_check_interval": 30},
        "warm": {"models": [WARM_MODEL]},
    }
    home = Path(tempfile.mkdtemp(prefix="n3w-", dir="/tmp"))
    times: dict[str, list[tuple[float, float]]] = {WARM_MODEL: [], COLD_MODEL: []}
    try:
        daemon = DaemonProcess(
            home,
            config=config,
            OLLAMA_SIM_MODELS_PRELOAD=f"{WARM_MODEL},{COLD_MODEL}",
            OLLAMA_SIM_LOAD_SECONDS=f"{args.load_seconds:g}",
            GIN_MODE="release",
            fast=False,
        )
        try:
            daemon.start().wait_ready(within_s=60)
            base_url = daemon.call("status")["server"]["base_url"]

            def warm_loaded() -> bool:
                rows = daemon.call("warm.list")["models"]
                return bool(rows) and all(r["loaded"] for r in rows)

            wait_until(warm_loaded, 60, "the warm model to load")
            for n in range(args.runs):
                order = (WARM_MODEL, COLD_MODEL) if n % 2 == 0 else (COLD_MODEL, WARM_MODEL)
                for model in order:
                    if model == COLD_MODEL and COLD_MODEL in _loaded(base_url):
                        raise RuntimeError(f"{COLD_MODEL} is loaded before a cold run")
                    times[model].append(first_request(daemon, model))
                    if model == COLD_MODEL:
                        unload(base_url, COLD_MODEL)
            daemon.stop()
        finally:
            daemon.cleanup()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report(args, times)
    return 0


def report(args: argparse.Namespace, times: dict[str, list[tuple[float, float]]]) -> None:
    print(
        f"first /api/generate (stream false, 8 tokens), simulated load {args.load_seconds:g} s, "
        f"{args.runs} runs each\n"
    )
    print("| model | before the request | runs | median | min | max | load_duration (median) |")
    print("|---|---|---|---|---|---|---|")
    medians = {}
    for model, label in ((WARM_MODEL, "kept warm by n3d"), (COLD_MODEL, "cold (not loaded)")):
        walls = [t for t, _ in times[model]]
        loads = [load for _, load in times[model]]
        medians[model] = statistics.median(walls)
        print(
            f"| {model} | {label} | {len(walls)} | {medians[model] * 1e3:.1f} ms | "
            f"{min(walls) * 1e3:.1f} ms | {max(walls) * 1e3:.1f} ms | "
            f"{statistics.median(loads) * 1e3:.1f} ms |"
        )
    ratio = medians[COLD_MODEL] / medians[WARM_MODEL]
    saved = medians[COLD_MODEL] - medians[WARM_MODEL]
    print(
        f"\nRatio cold/warm (medians): {ratio:.1f}×; keeping the model warm saves "
        f"{saved:.2f} s on the first request (the load, {args.load_seconds:g} s here)."
    )


if __name__ == "__main__":
    raise SystemExit(main())
