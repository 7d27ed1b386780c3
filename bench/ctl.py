"""Wall time of `n3ctl status` beside the floor and the peer, medians in one go.

Usage: python bench/ctl.py [RUNS] [--supervisor-bin DIR]   (default 40 runs)

Measured, each as a whole process from spawn to exit (stdout to /dev/null):

- floor: ``python -I -c "import socket, json"`` -- the least any Python client pays;
- ``n3ctl status`` (the installed console script) against ``n3d run --simulate``
  started here in temp dirs; if n3d does not open its control socket, against a
  standard-library stand-in that answers `status` with a fixed document, and the
  table says so (the client's cost, without the daemon's);
- ``supervisorctl status`` against a ``supervisord`` running one program
  (``sleep``); supervisor is pip-installed into a temporary venv unless
  ``--supervisor-bin`` names a directory holding supervisord and supervisorctl.

Rounds interleave the commands so drift in machine load hits all alike; three
warm-up rounds are not counted (they also write the ``.pyc`` files an installed
package has: ``PYTHONDONTWRITEBYTECODE`` is dropped from the commands' environment,
else every run would compile n3ctl's modules from source). Prints median and p90
per command and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from peers import kill_group, supervisord, wait_for_path

BIN = Path(sys.executable).parent
STAND_IN_STATUS = {
    "daemon": {"version": "0.1.0", "pid": 1, "uptime_s": 60.0, "socket": "-"},
    "server": {
        "state": "running",
        "mode": "managed",
        "pid": 2,
        "since": time.time() - 60,
        "base_url": "http://127.0.0.1:11434",
        "version": "0.5.7",
        "restarts": 0,
    },
    "health": {"ok": True, "latency_ms": 1.0, "age_s": 1.0, "cached": True},
    "resources": {"rss_bytes": 50_000_000, "cpu_percent": 0.0, "processes": 1},
    "models": {"installed": ["llama3.2"], "loaded": [], "warm": []},
}


@contextmanager
def n3d_daemon(tmp: Path) -> Iterator[tuple[dict[str, str], str]]:
    """A running n3d (or the stand-in); yields n3ctl's environment and a label."""
    sock = Path(tempfile.mkdtemp(prefix="n3b-", dir="/tmp")) / "s.sock"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OLLAMA_", "N3D_", "XDG_", "PYTHONDONTWRITEBYTECODE"))
    }
    for sub in ("run", "config", "state", "models"):
        (tmp / sub).mkdir(mode=0o700)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp / "n3d.toml"
    config.write_text(f'[ollama]\nbase_url = "http://127.0.0.1:{port}"\n')
    env.update(
        HOME=str(tmp),
        XDG_RUNTIME_DIR=str(tmp / "run"),
        N3D_SOCKET=str(sock),
        XDG_CONFIG_HOME=str(tmp / "config"),
        XDG_STATE_HOME=str(tmp / "state"),
        OLLAMA_MODELS=str(tmp / "models"),
        OLLAMA_SIM_MODELS_PRELOAD="llama3.2",
    )
    proc = subprocess.Popen(
        [str(BIN / "n3d"), "run", "--simulate", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if wait_for_path(sock, proc, 20):
            for _ in range(100):  # until the server is up: `status` exits 0
                done = subprocess.run([str(BIN / "n3ctl"), "status"], env=env, capture_output=True)
                if done.returncode == 0:
                    break
                time.sleep(0.2)
            yield env, "n3ctl status (n3d run --simulate)"
            return
        kill_group(proc)
        with _stand_in(sock):
            yield env, "n3ctl status (STAND-IN daemon: n3d opens no socket yet)"
    finally:
        if proc.poll() is None:
            kill_group(proc)
        shutil.rmtree(sock.parent, ignore_errors=True)


@contextmanager
def _stand_in(path: Path) -> Iterator[None]:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                for line in lines:
                    request = json.loads(line)
                    reply = {"jsonrpc": "2.0", "id": request.get("id"), "result": STAND_IN_STATUS}
                    conn.sendall(json.dumps(reply).encode() + b"\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield
    finally:
        listener.close()


def _compiled_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _time(command: list[str], env: dict[str, str] | None) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=40)
    parser.add_argument("--supervisor-bin", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="n3-bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        (tmp / "n3d").mkdir()
        env, label = stack.enter_context(n3d_daemon(tmp / "n3d"))
        peer = stack.enter_context(supervisord(tmp, args.supervisor_bin))
        commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
            'python -I -c "import socket, json" (floor)': (
                [sys.executable, "-I", "-c", "import socket, json"],
                _compiled_env(),
            ),
            label: ([str(BIN / "n3ctl"), "status"], env),
        }
        if peer is not None:
            commands["supervisorctl status (1 program)"] = (peer.status_command, _compiled_env())
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_no in range(args.runs + 3):
            for name, (command, command_env) in commands.items():
                elapsed = _time(command, command_env)
                if round_no >= 3:
                    times[name].append(elapsed)
    floor = statistics.median(next(iter(times.values())))
    n3ctl = statistics.median(times[label])
    print(f"{args.runs} runs each, interleaved; wall time from spawn to exit\n")
    print(f"{'command':<58} {'median':>9} {'p90':>9} {'× floor':>8}")
    for name, values in times.items():
        values.sort()
        med, p90 = statistics.median(values), values[int(0.9 * (len(values) - 1))]
        print(f"{name:<58} {med * 1000:7.1f}ms {p90 * 1000:7.1f}ms {med / floor:7.2f}×")
    for name, values in times.items():
        if name.startswith("supervisorctl"):
            print(f"\nsupervisorctl / n3ctl: {statistics.median(values) / n3ctl:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
