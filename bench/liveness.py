"""Liveness: from an inference fault behind a healthy `GET /` to a model that answers again.

    .venv/bin/python bench/liveness.py [--configs defaults,10/10] [--faults all]
                                       [--runs 1] [--busy-minutes 10] [--json]

A real ``n3d run --simulate`` (``n3d.testing.DaemonProcess`` with n3d's default
config but ``[liveness]``) keeps one model warm (``tinyllama``); a second one is
installed for the wedge. Each fault flips one of the simulator's inference switches
through its control file (docs/simulator.md) at a random phase of the probe cycle,
and the script times, from that moment:

- **detect**: the first sign n3d saw it: a ``repair`` event in its log (hung
  inference, a hung runner), the model in ``health.checks.scheduler.wedged`` (a
  wedged unload), the model reported ``slow`` with both rates (slow tokens);
- **recover**: a generation of the warm model sent straight to the simulator
  answers again (hung inference: the switch is lifted once n3d restarts serve, as a
  restart is what cures a real deadlock; a hung runner: the switch stays, its hang
  ends with the runner n3d stops); the wedged model has left `/api/ps`; for slow
  tokens (the switch stays: the GPU is gone), the server is ``degraded`` with the
  reason after its one restart.

Configs: ``defaults`` (``probe_interval = 30``, ``probe_timeout = 20``: aim ≤ 90 s
for hung inference) and ``10/10`` (aim ≤ 60 s). Beside them, what users have today,
not run: Ollama's own systemd unit (``Restart=always``), llama-swap (health only
while starting, #608) and supervisord see only the process, so **never**; the cron
job that restarts Ollama every ten minutes (#1863) recovers within **up to 10
minutes** (5 on average) and also restarts a healthy, busy server six times an hour.

**Busy** (``--busy-minutes``, 0 to skip): ``OLLAMA_NUM_PARALLEL=1`` and tokens of
1 s (``OLLAMA_SIM_TOKEN_SECONDS``; the simulator's completions are 8–24 tokens, so
8–24 s each), a client sends back-to-back generations to the warm model, so every
probe waits behind one, for that many minutes with the 10/10 config (the most probes
that can time out: a 10 s bound against up to 24 s of queue). Counted: repairs
(must be 0), serve and runner pid changes (0), probes sent and their outcomes
(``ollama.inference.probe_duration`` by ``outcome``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from n3d.testing import DaemonProcess
from n3d.testing.inference import answers, generate, probes, repairs, runner_pids

WARM, WARM_NAME, OTHER = "tinyllama", "tinyllama:latest", "llama3"
CONFIGS = {"defaults": (30.0, 20.0), "10/10": (10.0, 10.0)}
FAULTS = ("hang_inference", "hang_runner", "wedge_unload", "slow")
AIMS = {"defaults": 90.0, "10/10": 60.0}
PEERS = [
    ("Ollama's own unit (Restart=always)", "never"),
    ("llama-swap (health only while starting)", "never"),
    ("supervisord", "never"),
    ("cron: restart every 10 minutes", "up to 600 s (300 s on average)"),
]


def until(check: Callable[[], Any], within_s: float, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        time.sleep(every_s)
    return None


def start(home: Path, interval: float, timeout: float, **env: str) -> DaemonProcess:
    config = {
        "warm": {"models": [WARM]},
        "liveness": {"probe_interval": interval, "probe_timeout": timeout},
    }
    preload = f"{WARM},{OTHER}"
    d = DaemonProcess(home, config=config, fast=False, OLLAMA_SIM_MODELS_PRELOAD=preload, **env)
    d.start().wait_ready(within_s=60)
    if not until(lambda: _check(d, lambda m: m["source"] == "probe"), 2 * interval + 30):
        raise RuntimeError(f"no probe of the warm model: {d.describe()}")
    return d


def _check(d: DaemonProcess, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    for model in d.call("health")["checks"]["inference"]["models"]:
        if model["model"] == WARM_NAME and test(model):
            return dict(model)
    return None


def _repaired(d: DaemonProcess, stage: str) -> bool:
    return any(e["stage"] == stage for e in repairs(d))


def fault(d: DaemonProcess, kind: str, interval: float, timeout: float) -> dict[str, Any]:
    """Inject ``kind``; detect and recover seconds, the repairs, the restarts."""
    bound = 2 * interval + 4 * timeout + 90  # generous: a failure is reported, not waited out
    if kind == "slow":  # a baseline needs three good probes first
        until(lambda: _check(d, lambda m: m["baseline_tps"]), 4 * interval + 30)
    time.sleep(random.uniform(0, interval))  # a random phase of the probe cycle
    serve = d.call("status")["server"]["pid"]
    t0 = time.monotonic()
    detect: float | None = None
    recovered: Any = None
    if kind == "hang_inference":
        d.set_control(hang_inference=True)
        if until(lambda: repairs(d), bound):
            detect = time.monotonic() - t0
        until(lambda: _repaired(d, "serve"), bound)
        d.set_control()
        recovered = until(lambda: answers(d.port, WARM, 2.0), bound, 0.1)
    elif kind == "hang_runner":
        d.set_control(hang_runner=WARM)
        if until(lambda: repairs(d), bound):
            detect = time.monotonic() - t0
        recovered = until(lambda: answers(d.port, WARM, 2.0), bound, 0.1)
    elif kind == "wedge_unload":
        d.set_control(wedge_unload=True)
        generate(d.port, OTHER, keep_alive="1s", options={"num_predict": 2})
        if until(lambda: d.call("health")["checks"]["scheduler"]["wedged"], bound + 30, 0.1):
            detect = time.monotonic() - t0

        def gone() -> bool:
            return all(m["name"] != f"{OTHER}:latest" for m in d.call("models.loaded")["models"])

        recovered = until(gone, bound, 0.1)
    else:
        d.set_control(slow=20)
        if until(lambda: _check(d, lambda m: m["slow"]), bound, 0.1):
            detect = time.monotonic() - t0

        def degraded() -> bool:
            s = d.call("status")["server"]
            return s["state"] == "degraded" and "inference slow" in s["reason"]

        recovered = until(degraded, bound, 0.1)
    took = time.monotonic() - t0
    status = d.call("status")["server"]
    row = {
        "fault": kind,
        "detect_s": None if detect is None else round(detect, 1),
        "recover_s": round(took, 1) if recovered else None,
        "repairs": [e["stage"] for e in repairs(d)],
        "serve_restarted": status["pid"] != serve,
        "restarts": status["restarts"],
    }
    if kind == "slow":
        row["rates"] = _check(d, lambda m: True)
        row["reason"] = status["reason"]
    return row


def busy(home: Path, minutes: float) -> dict[str, Any]:
    """Back-to-back long generations with OLLAMA_NUM_PARALLEL=1: repairs must be 0."""
    interval, timeout = CONFIGS["10/10"]
    d = start(home, interval, timeout, OLLAMA_NUM_PARALLEL="1", OLLAMA_SIM_TOKEN_SECONDS="1")
    try:
        serve = d.call("status")["server"]["pid"]
        runners = runner_pids(serve)
        stop = threading.Event()
        done: list[int] = []

        def load() -> None:
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    answer = generate(d.port, WARM, prompt=f"story {len(done)}", timeout_s=120)
                    done.append(int(answer.get("eval_count", 0)))

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        time.sleep(minutes * 60)
        stop.set()
        worker.join(120)
        outcomes: dict[str, int] = {}
        for series in d.call("metrics")["series"]:
            if series["name"] == "ollama.inference.probe_duration":
                outcome = series["tags"].get("outcome", "?")
                outcomes[outcome] = outcomes.get(outcome, 0) + int(series.get("count", 0))
        status = d.call("status")["server"]
        return {
            "minutes": minutes,
            "generations": len(done),
            "tokens": sum(done),
            "probes_sent": len(probes(d)),
            "probe_outcomes": outcomes,
            "repairs": len(repairs(d)),
            "serve_pid_changed": status["pid"] != serve,
            "runner_pids_changed": runner_pids(status["pid"]) != runners,
            "restarts": status["restarts"],
        }
    finally:
        d.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="defaults,10/10")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--busy-minutes", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="n3lv", dir="/tmp"))
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {"faults": rows, "peers": dict(PEERS)}
    try:
        n = 0
        for name in args.configs.split(","):
            interval, timeout = CONFIGS[name]
            for kind in args.faults.split(","):
                for _ in range(args.runs):
                    n += 1
                    home = root / f"f{n}"
                    home.mkdir(mode=0o700)
                    d = start(home, interval, timeout)
                    try:
                        row = {"config": name, **fault(d, kind, interval, timeout)}
                    finally:
                        d.cleanup()
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
        if args.busy_minutes > 0:
            home = root / "busy"
            home.mkdir(mode=0o700)
            result["busy"] = busy(home, args.busy_minutes)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("| config | fault | detect | detect + recover | aim | repairs |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        aim = f"≤ {AIMS[row['config']]:g} s" if row["fault"] == "hang_inference" else ""
        recover = "—" if row["recover_s"] is None else f"{row['recover_s']} s"
        print(
            f"| {row['config']} | {row['fault']} | {row['detect_s']} s | {recover} | {aim} "
            f"| {', '.join(row['repairs']) or 'none'} |"
        )
    for peer, figure in PEERS:
        print(f"| {peer} | any of these | — | {figure} | | |")
    if "busy" in result:
        print()
        print(json.dumps(result["busy"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
