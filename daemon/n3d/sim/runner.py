"""The runner child: one per loaded model, like Ollama's `ollama runner --model ... --port N`.

It listens on `127.0.0.1:<port>` and carries out inference for the server, as
Ollama's runner does (`runner/llamarunner/runner.go`, v0.13.5):
- `GET /health` answers `{"status":"ok"}`;
- `POST /completion` streams one JSON line per token (`{"content", "done": false}`),
  then a final line with `done_reason` and the prompt and eval counters;
- `POST /embedding` answers `{"embedding": [...], "prompt_eval_count": N}`.

Work costs real CPU: each token (and each embedded text) lasts the token time the
server asks for, and the first :data:`BUSY_FRACTION` of it is a busy loop, so a
generating runner's CPU time advances (about a quarter of a core) while an idle one,
blocked in `accept`, spends none. This is what tells "busy" from "hung" to a
supervisor, as the CPU threads of a real runner's decode loop do.

`POST /sim/hang {"hang": true}` is the simulator's own: the server sends it to carry
out `OLLAMA_SIM_HANG_RUNNER`. A hung runner still accepts connections, but every
completion and embedding, new or under way, stops before its next token and waits
without using the CPU until `{"hang": false}` or the process dies.

Each connection gets a thread; a generation stops when the server closes the
connection (the client went away). It makes no effort to notice its parent's
death: like a real runner it is orphaned (and keeps running) when the server is
SIGKILLed, which is what supervisors must clean up with a process-group kill. It
imports only the standard library and the simulator's stand-in text.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import threading
import time
from typing import Any

from n3d.sim.text import completion_words, count_tokens, embedding
from n3d.sim.wire import slog_time

__all__ = ["BUSY_FRACTION", "main"]

BUSY_FRACTION = 0.25  # of each token's time spent computing; the rest waits


def _log(msg: str, **attrs: object) -> None:
    stamp = slog_time()
    fields = "".join(f" {k}={v}" for k, v in attrs.items())
    sys.stderr.write(f'time={stamp} level=INFO source=runner.go:1 msg="{msg}"{fields}\n')
    sys.stderr.flush()


class _Conn:
    """One accepted connection: a request read, replies written."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def read_request(self) -> tuple[str, str, dict[str, Any]]:
        """Method, path and JSON body (`{}` when empty or not JSON)."""
        method, path, _ = self.file.readline().decode("latin-1").split(" ", 2)
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        try:
            body = json.loads(self.file.read(length)) if length else {}
        except ValueError:
            body = {}
        return method, path, body if isinstance(body, dict) else {}

    def head(self, status: str) -> None:
        # Connection: close and no length: the body ends when the runner closes it.
        self.sock.sendall(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            "Connection: close\r\n\r\n".encode()
        )

    def line(self, value: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(value, separators=(",", ":")).encode() + b"\n")

    def peer_closed(self) -> bool:
        """True once the server has closed its side (its client went away)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable) and self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


def _work(until: float) -> None:
    """Compute (a busy loop) for the first BUSY_FRACTION of the time left, then wait."""
    now = time.perf_counter()
    busy_until = now + (until - now) * BUSY_FRACTION
    spins = 0
    while time.perf_counter() < busy_until:
        spins += 1
    rest = until - time.perf_counter()
    if rest > 0:
        time.sleep(rest)


class Runner:
    """The runner's state: its context size and whether it is hung."""

    def __init__(self, ctx_size: int) -> None:
        self.ctx_size = ctx_size
        self.running = threading.Event()  # cleared while hung
        self.running.set()

    def serve(self, sock: socket.socket) -> None:
        conn = _Conn(sock)
        with sock, conn.file:
            try:
                method, path, body = conn.read_request()
                if path == "/health":
                    conn.head("200 OK")
                    conn.line({"status": "ok"})
                elif (method, path) == ("POST", "/completion"):
                    self.completion(conn, body)
                elif (method, path) == ("POST", "/embedding"):
                    self.embedding(conn, body)
                elif (method, path) == ("POST", "/sim/hang"):
                    if body.get("hang"):
                        self.running.clear()
                    else:
                        self.running.set()
                    conn.head("200 OK")
                    conn.line({"hang": not self.running.is_set()})
                else:
                    conn.head("404 Not Found")
            except (OSError, ValueError):
                pass  # the server went away, or sent something we cannot read

    def _gate(self, conn: _Conn) -> bool:
        """Wait (no CPU) while hung; False when the server no longer wants the answer."""
        self.running.wait()
        return not conn.peer_closed()

    def completion(self, conn: _Conn, body: dict[str, Any]) -> None:
        sim = body.get("n3d_sim") or {}
        prompt = str(body.get("prompt", ""))
        pieces = completion_words(str(sim.get("seed", "")), prompt)
        reason = "stop"
        limit = (body.get("options") or {}).get("num_predict")
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces, reason = pieces[:limit], "length"
        token_s = float(sim.get("token_seconds", 0.0))
        if not self._gate(conn):
            return
        conn.head("200 OK")
        started = deadline = time.perf_counter()
        for piece in pieces:
            deadline += token_s
            now = time.perf_counter()
            if deadline < now:  # fell behind a whole token (a hang): pace afresh from now
                deadline = now + token_s
            _work(deadline)
            if not self._gate(conn):
                return
            conn.line({"content": piece, "done": False})
        prompt_count = count_tokens(prompt)
        conn.line(
            {
                "content": "",
                "done_reason": reason,
                "done": True,
                "prompt_eval_count": prompt_count,
                "prompt_eval_duration": prompt_count * 180_000,
                "eval_count": len(pieces),
                "eval_duration": max(int((time.perf_counter() - started) * 1e9), 1),
            }
        )

    def embedding(self, conn: _Conn, body: dict[str, Any]) -> None:
        sim = body.get("n3d_sim") or {}
        content = str(body.get("content", ""))
        if not self._gate(conn):
            return
        _work(time.perf_counter() + float(sim.get("token_seconds", 0.0)))
        vector = embedding(str(sim.get("seed", "")), content, int(sim.get("dimensions", 768)))
        if not self._gate(conn):
            return
        conn.head("200 OK")
        conn.line(
            {"embedding": vector, "prompt_eval_count": min(count_tokens(content), self.ctx_size)}
        )


def main(argv: list[str] | None = None) -> int:
    """Serve on the given port until killed."""
    parser = argparse.ArgumentParser(prog="ollama runner")
    parser.add_argument("--model", required=True, help="path of the model blob")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ctx-size", type=int, default=4096)
    args = parser.parse_args(argv)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(64)
    _log("starting go runner")
    _log("Server listening on", addr=f"127.0.0.1:{args.port}", model=args.model, ctx=args.ctx_size)
    runner = Runner(args.ctx_size)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=runner.serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main())
