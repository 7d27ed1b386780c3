"""Time from spawning `ollama-sim serve` to its first successful `HEAD /`.

Usage: python bench/sim_startup.py [RUNS]   (default 20)

Each run starts `python -m n3d.sim serve` on a free port with an empty temporary
OLLAMA_MODELS and no ready delay, polls `HEAD /` every 2 ms with a raw socket,
records the elapsed time, then SIGKILLs the process group. Prints median and p90.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from n3d.testing.simulator import free_port, head_ok


def one_run(
    models_dir: str,
    extra_env: dict[str, str] | None = None,
    within_s: float = 10.0,
    poll_s: float = 0.002,
) -> float:
    """Seconds from spawning `ollama-sim serve` to its first 200 answer to `HEAD /`.

    The simulator gets a clean environment (no ``OLLAMA_*`` of the caller's),
    its own port and ``models_dir``, plus ``extra_env``.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update(extra_env or {}, OLLAMA_HOST=f"127.0.0.1:{port}", OLLAMA_MODELS=models_dir)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "n3d.sim", "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not head_ok(port, 0.2):
            if proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {proc.returncode}")
            if time.perf_counter() - started > within_s:
                raise TimeoutError(f"simulator: no answer within {within_s:g} s")
            time.sleep(poll_s)
        return time.perf_counter() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as tmp:
        one_run(tmp)  # warm the OS file cache once; not counted
        times = sorted(one_run(tmp) for _ in range(runs))
    p90 = times[min(len(times) - 1, int(round(0.9 * len(times))) - 1)]
    print(
        f"ollama-sim startup to first HEAD / over {runs} runs: "
        f"median {statistics.median(times) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, "
        f"min {times[0] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
