"""The request path's cost: direct vs through n3d vs through nginx, and the stacks n3d chose from.

    .venv/bin/python bench/proxy.py [--stacks] [--seconds 4] [--interval-ms 2] [--lines 400]
    .venv/bin/python bench/proxy.py --servers      # routing: 1 server vs 4 (only this)

One upstream for every column: bench/proxy_parts.py's stand-in Ollama (raw
asyncio, cheaper than anything it measures), answering ``GET /api/version`` and
streaming ``POST /api/generate`` as Ollama does, one NDJSON chunk per token every
``--interval-ms`` per stream (2 ms = 500 tokens/s a stream, far above any GPU: the
"high token rate"). Columns:

- **direct**: the load client to the upstream;
- **n3d**: a real ``n3d run`` (``[server] mode = "external"`` on the upstream,
  ``[proxy] listen`` on a free port, every other key its default: the ``request``
  event is logged per request, metrics aggregated);
- **nginx**: Debian's nginx, started by the bench with a generated config (one
  worker, as n3d is one process; ``proxy_buffering off``, upstream keep-alive,
  the default access log), skipped with a reason when ``nginx`` is not installed.

Rows: added p50/p99 latency of a small request (``GET /api/version``) at 1 and 32
clients, each on one keep-alive connection; chunks/s of 64 clients streaming
generates back to back. Aims (issue 16): added p50 ≤ 0.5 ms at 1 client; ≥ 0.9×
direct chunks/s at 64 streams; n3d's added latency within 3× nginx's.

``--stacks`` first measures the candidates n3d chose its HTTP stack from (a bare
forwarder per server × client pair, bench/proxy_parts.py ``forward``) on the same
upstream: the figures in docs/proxy.md "Why these libraries".

``--servers`` measures what routing between servers costs (issue 17): n3d's proxy
(bench/proxy_servers.py, the real request path in a process of its own) in front
of 1 upstream, then of 4, ``llama3.2`` loaded on two of them: added p50/p99 of
``POST /api/show {"model": "llama3.2"}`` (routed by model) and ``GET /api/version``
(the first healthy server), chunks/s of 64 streams, and the router's own work per
request measured in process.

The machine is shared and small (2 cores): compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import proxy_parts
import proxy_servers

from n3d.testing import DaemonProcess, wait_until
from n3d.testing.simulator import free_port

PARTS = str(Path(__file__).resolve().parent / "proxy_parts.py")
SERVERS = str(Path(__file__).resolve().parent / "proxy_servers.py")
SHOW = b'{"model":"llama3.2"}'
STACKS = [
    ("aiohttp", "aiohttp"),
    ("uvicorn-httptools", "aiohttp"),
    ("uvicorn-h11", "aiohttp"),
    ("hypercorn", "aiohttp"),
    ("aiohttp", "httpx"),
    ("aiohttp", "httpcore"),
    ("uvicorn-httptools", "httpx"),
]
Row = dict[str, float]


@contextmanager
def _child(*args: str, script: str = PARTS) -> Iterator[subprocess.Popen[bytes]]:
    """A bench/proxy_parts.py (or ``script``) process, once it says it listens."""
    proc = subprocess.Popen(
        [sys.executable, script, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.3)  # "listening" is printed just before the bind
        yield proc
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def _nginx(port: int, upstream_port: int, tmp: Path) -> Iterator[str | None]:
    """nginx in front of the upstream on ``port``; yields None (and why) when absent."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        yield "nginx is not installed (apt-get install nginx-light)"
        return
    prefix = tmp / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
{"user root;" if hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0 else ""}
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log {prefix}/access.log;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  upstream ollama {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port} backlog=1024;
    location / {{
      proxy_pass http://ollama;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
    }}
  }}
}}
"""
    )
    proc = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            why = proc.stderr.read().decode()[-300:] if proc.stderr else ""
            yield f"nginx did not start: {why}"
            return
        yield None
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()


@contextmanager
def _n3d(port: int, upstream_port: int, tmp: Path) -> Iterator[DaemonProcess]:
    home = Path(tempfile.mkdtemp(prefix="n3b", dir="/tmp"))
    config = {
        "ollama": {"base_url": f"http://127.0.0.1:{upstream_port}"},
        "server": {"mode": "external"},
        "proxy": {"listen": f"127.0.0.1:{port}"},
    }
    daemon = DaemonProcess(home, config=config, fast=False, port=upstream_port)
    try:
        daemon.start()
        daemon.wait_ready("external")
        wait_until(lambda: _answers(port), within_s=20, what="the proxy listener")
        yield daemon
    finally:
        daemon.stop()
        daemon.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        samples = asyncio.run(proxy_parts.latency(port, 1, 1))
    except OSError:
        return False
    return bool(samples)


async def _measure(port: int, seconds: float) -> Row:
    await proxy_parts.latency(port, 1, 200)  # warm the pools
    one = proxy_parts.percentiles(await proxy_parts.latency(port, 1, 2000))
    many = proxy_parts.percentiles(await proxy_parts.latency(port, 32, 150))
    rate, chunks, generates = await proxy_parts.streams(port, 64, seconds)
    return {
        "p50_1": one[0] * 1e3,
        "p99_1": one[1] * 1e3,
        "p50_32": many[0] * 1e3,
        "p99_32": many[1] * 1e3,
        "chunks_s": rate,
        "generates": generates,
    }


def _table(rows: dict[str, Row], direct: Row) -> str:
    out = [
        "| path | p50 1 client (ms) | added | p99 1 client | p50 32 clients | added | "
        "p99 32 clients | chunks/s, 64 streams | × direct |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        out.append(
            f"| {name} | {r['p50_1']:.3f} | {r['p50_1'] - direct['p50_1']:+.3f} | "
            f"{r['p99_1']:.3f} | {r['p50_32']:.3f} | {r['p50_32'] - direct['p50_32']:+.3f} | "
            f"{r['p99_32']:.3f} | {r['chunks_s']:,.0f} | {r['chunks_s'] / direct['chunks_s']:.2f} |"
        )
    return "\n".join(out)


def _stacks(upstream_port: int, seconds: float, direct: Row) -> None:
    rows: dict[str, Row] = {"direct": direct}
    for server, client in STACKS:
        port = free_port()
        url = f"http://127.0.0.1:{upstream_port}"
        with _child("forward", "--port", str(port), "--upstream", url, "--server", server,
                    "--client", client):  # fmt: skip
            try:
                rows[f"{server} + {client}"] = asyncio.run(_measure(port, seconds))
            except Exception as exc:  # a candidate that breaks is a figure too
                print(f"{server} + {client}: failed: {type(exc).__name__}: {exc}")
    print("\n## Candidate stacks (a bare forwarder each)\n")
    print(_table(rows, direct))


async def _measure_routing(port: int, seconds: float) -> Row:
    await proxy_parts.latency(port, 1, 200, "/api/show", SHOW)  # warm the pools
    show = proxy_parts.percentiles(await proxy_parts.latency(port, 1, 2000, "/api/show", SHOW))
    many = proxy_parts.percentiles(await proxy_parts.latency(port, 32, 150, "/api/show", SHOW))
    version = proxy_parts.percentiles(await proxy_parts.latency(port, 1, 2000))
    rate, _, _ = await proxy_parts.streams(port, 64, seconds)
    return {
        "show_p50_1": show[0] * 1e3,
        "show_p99_1": show[1] * 1e3,
        "show_p50_32": many[0] * 1e3,
        "show_p99_32": many[1] * 1e3,
        "version_p50_1": version[0] * 1e3,
        "chunks_s": rate,
    }


def _servers(args: argparse.Namespace) -> None:
    """Routing between servers: n3d's proxy before 1 upstream, then 4 (module docstring)."""
    ports = [free_port() for _ in range(4)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    rows: dict[str, Row] = {}
    with contextlib.ExitStack() as stack:
        for port in ports:
            up = ("upstream", "--port", str(port), "--lines", str(args.lines))
            stack.enter_context(_child(*up, "--interval-ms", str(args.interval_ms)))
        direct = asyncio.run(_measure_routing(ports[0], args.seconds))
        for count in (1, 4):
            port = free_port()
            upstreams = [a for url in urls[:count] for a in ("--upstream", url)]
            with _child("serve", "--port", str(port), *upstreams, script=SERVERS):
                rows[f"n3d, {count} server{'s' if count > 1 else ''}"] = asyncio.run(
                    _measure_routing(port, args.seconds)
                )
    print(f"\n## Routing: 1 server vs 4 ({args.lines} tokens a generate)\n")
    print(
        "| path | show p50 1 client (ms) | added | show p99 1 client | show p50 32 clients "
        "| show p99 32 clients | version p50 1 client | chunks/s, 64 streams |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in {"direct (one upstream)": direct, **rows}.items():
        print(
            f"| {name} | {r['show_p50_1']:.3f} | {r['show_p50_1'] - direct['show_p50_1']:+.3f} | "
            f"{r['show_p99_1']:.3f} | {r['show_p50_32']:.3f} | {r['show_p99_32']:.3f} | "
            f"{r['version_p50_1']:.3f} | {r['chunks_s']:,.0f} |"
        )
    one, four = rows["n3d, 1 server"], rows["n3d, 4 servers"]
    print(
        f"\nrouting overhead, 4 servers vs 1: p50 1 client "
        f"{(four['show_p50_1'] - one['show_p50_1']) * 1e3:+.0f} us (show), "
        f"{(four['version_p50_1'] - one['version_p50_1']) * 1e3:+.0f} us (version); "
        f"chunks/s x{four['chunks_s'] / one['chunks_s']:.2f}"
    )
    costs = {count: proxy_servers.pick_cost(count) for count in (1, 4)}
    print(
        f"router's work per request, in process: {costs[1]:.1f} us with 1 server, "
        f"{costs[4]:.1f} us with 4"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stacks", action="store_true", help="measure the candidate stacks too")
    parser.add_argument("--servers", action="store_true", help="only routing: 1 server vs 4")
    parser.add_argument("--seconds", type=float, default=4.0, help="per streaming measurement")
    parser.add_argument("--interval-ms", type=float, default=2.0, help="per token, per stream")
    parser.add_argument("--lines", type=int, default=400, help="tokens per generate")
    args = parser.parse_args()
    if args.servers:
        _servers(args)
        return
    upstream_port = free_port()
    up = ("upstream", "--port", str(upstream_port), "--lines", str(args.lines))
    with (
        _child(*up, "--interval-ms", str(args.interval_ms)),
        tempfile.TemporaryDirectory() as tmp_name,
    ):
        tmp = Path(tmp_name)
        direct = asyncio.run(_measure(upstream_port, args.seconds))
        if args.stacks:
            _stacks(upstream_port, args.seconds, direct)
        rows: dict[str, Row] = {"direct": direct}
        port = free_port()
        with _n3d(port, upstream_port, tmp):
            rows["through n3d"] = asyncio.run(_measure(port, args.seconds))
        port = free_port()
        with _nginx(port, upstream_port, tmp) as skipped:
            if skipped is None:
                rows["through nginx"] = asyncio.run(_measure(port, args.seconds))
            else:
                print(f"nginx skipped: {skipped}")
    print(
        f"\n## Direct vs n3d vs nginx ({args.lines} tokens a generate, one every "
        f"{args.interval_ms:g} ms per stream)\n"
    )
    print(_table(rows, direct))
    n3d = rows["through n3d"]
    added = n3d["p50_1"] - direct["p50_1"]
    ratio = n3d["chunks_s"] / direct["chunks_s"]
    print(f"\naim: added p50 at 1 client <= 0.5 ms: {added:.3f} ms: {_verdict(added <= 0.5)}")
    print(f"aim: chunks/s >= 0.9x direct at 64 streams: {ratio:.2f}x: {_verdict(ratio >= 0.9)}")
    if "through nginx" in rows:
        nginx_added = rows["through nginx"]["p50_1"] - direct["p50_1"]
        within = added <= 3 * max(nginx_added, 1e-9)
        print(
            f"aim: n3d's added latency within 3x nginx's: {added:.3f} vs {nginx_added:.3f} ms "
            f"({added / max(nginx_added, 1e-9):.1f}x): {_verdict(within)}"
        )


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()
