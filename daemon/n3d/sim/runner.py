"""The runner child: one per loaded model, like Ollama's `ollama runner --model ... --port N`.

It listens on `127.0.0.1:<port>` and answers `GET /health` with `{"status":"ok"}`,
which is all the simulator's scheduler asks of it. It does no inference. It makes
no effort to notice its parent's death: like a real runner it is orphaned (and
keeps running) when the server is SIGKILLed, which is what supervisors must
clean up with a process-group kill. It imports only the standard library.
"""

from __future__ import annotations

import argparse
import socket
import sys

from n3d.sim.wire import slog_time

__all__ = ["main"]


def _log(msg: str, **attrs: object) -> None:
    stamp = slog_time()
    fields = "".join(f" {k}={v}" for k, v in attrs.items())
    sys.stderr.write(f'time={stamp} level=INFO source=runner.go:1 msg="{msg}"{fields}\n')
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve `/health` on the given port until killed."""
    parser = argparse.ArgumentParser(prog="ollama runner")
    parser.add_argument("--model", required=True, help="path of the model blob")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ctx-size", type=int, default=4096)
    args = parser.parse_args(argv)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(16)
    _log("starting go runner")
    _log("Server listening on", addr=f"127.0.0.1:{args.port}", model=args.model, ctx=args.ctx_size)
    body = b'{"status":"ok"}'
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(2.0)
            try:
                conn.recv(65536)
                conn.sendall(reply)
            except OSError:
                pass


if __name__ == "__main__":
    raise SystemExit(main())
