"""Wire faults: a burst of connections and malformed frames on n3d's control socket.

:func:`burst` opens ``BURST`` connections at once with a ``status`` on each: every one
must get a result or a refusal (-32000, or closed) within the request bound, never
hang, and n3d serves no more than its 256 connections. :func:`bad_frames` sends
garbage, a bad LSP header and an oversized line (-32700, then close), valid JSON that
is no request (-32600, connection still usable), a request id of ``1e400`` (-32600
with id null, valid JSON, connection still usable), a huge batch (``rpc.discover``
as many times as one message holds, a reply far over the 8 MiB unread-reply cap:
-32000, then close), half a line then close, and half a line held open, checked in
a late thread for -32700 after the frame timeout.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import threading
import time
from collections import Counter
from typing import Any

from n3d.testing.drill.bounds import BURST, FRAME_TIMEOUT_S, MAX_MESSAGE_BYTES, REQUEST_BOUND_S
from n3d.testing.drill.drill import Drill
from n3d.testing.drill.rawconn import RawConn
from n3d.testing.drill.records import FaultRecord


def burst(drill: Drill, rec: FaultRecord) -> None:
    """BURST connections at once, a `status` on each: a result or a refusal, never a hang."""
    socks: list[socket.socket] = []
    connect_failed = 0
    try:
        for _ in range(BURST):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(str(drill.d.socket))
            except OSError:
                connect_failed += 1
                s.close()
                continue
            socks.append(s)
        t = time.monotonic()
        outcome: dict[socket.socket, str] = {}
        bufs: dict[socket.socket, bytes] = {}
        sel = selectors.DefaultSelector()
        for i, s in enumerate(socks):
            try:
                s.sendall(b'{"jsonrpc":"2.0","id":%d,"method":"status"}\n' % i)
            except OSError:
                outcome[s] = "closed"
                continue
            s.setblocking(False)
            bufs[s] = b""
            sel.register(s, selectors.EVENT_READ)
        deadline = t + REQUEST_BOUND_S
        while len(outcome) < len(socks) and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                s = key.fileobj  # type: ignore[assignment]
                try:
                    chunk = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    outcome[s] = "closed"
                else:
                    bufs[s] += chunk
                    if b"\n" not in bufs[s]:
                        continue
                    reply = json.loads(bufs[s].split(b"\n", 1)[0])
                    if "result" in reply:
                        outcome[s] = "result"
                    elif reply.get("error", {}).get("code") == -32000:
                        outcome[s] = "busy"
                    else:
                        outcome[s] = f"error {reply.get('error')}"
                sel.unregister(s)
        sel.close()
        counts = Counter(outcome.values())
        counts["hung"] = len(socks) - len(outcome)
        counts["connect_failed"] = connect_failed
        rec.detail.update(counts)
        rec.recovery_s = round(time.monotonic() - t, 3)
        if counts["hung"] or connect_failed:
            rec.fail(f"{counts['hung']} connections hung, {connect_failed} could not connect")
        if set(counts) - {"result", "busy", "closed", "hung", "connect_failed"}:
            rec.fail(f"unexpected replies: {dict(counts)}")
        if counts["result"] < 200 or counts["result"] > 256:
            rec.fail(f"{counts['result']} of {BURST} served (max_connections 256)")
        if counts["busy"] + counts["closed"] < BURST - 256:
            rec.fail(f"only {counts['busy'] + counts['closed']} refused")
    finally:
        for s in socks:
            s.close()
    st = drill.status()  # the daemon still answers, on a fresh request
    if st["server"]["state"] not in ("running", "degraded"):
        rec.fail(f"server state after the burst: {st['server']['state']}")


def bad_frames(drill: Drill, rec: FaultRecord) -> None:
    """Garbage, bad LSP headers, an oversized line: -32700 then close. Valid JSON
    that is no request: -32600, the connection stays usable. Half a line then
    close: nothing. Half a line held open: -32700 after the frame timeout."""
    t = time.monotonic()
    oversized = b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":"'
    oversized += b"a" * (MAX_MESSAGE_BYTES + 10) + b'"}}\n'
    for name, data in (
        ("garbage", b"hello, is this ollama?\n"),
        ("bad_lsp", b"Content-Length: lots\r\n\r\n{}"),
        ("oversized", oversized),
    ):
        conn = RawConn(drill.d.socket)
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.send(data)
            first = conn.read(REQUEST_BOUND_S)
            after = conn.read(REQUEST_BOUND_S) if first is not None else None
        except TimeoutError:
            rec.fail(f"{name}: no reply and no close within {REQUEST_BOUND_S}s")
            continue
        finally:
            conn.close()
        code = (first or {}).get("error", {}).get("code")
        rec.detail[name] = code
        if code != -32700 or after is not None:
            rec.fail(f"{name}: expected -32700 and close, got {first} then {after}")
    conn = RawConn(drill.d.socket)
    replies: list[dict[str, Any] | None] = []
    try:
        conn.send(
            b'{"jsonrpc":"2.0","id":5,"method":42}\n{"jsonrpc":"2.0","id":6,"method":"health"}\n'
        )
        for _ in range(2):
            replies.append(conn.read(REQUEST_BOUND_S))
    except TimeoutError:
        pass
    finally:
        conn.close()
    rec.detail["not_a_request"] = [
        (r or {}).get("error", {}).get("code", "result" if r and "result" in r else None)
        for r in replies
    ]
    if rec.detail["not_a_request"] not in ([-32600, "result"], ["result", -32600]):
        rec.fail(f"invalid request then health on one connection: {replies}")
    _non_finite_id(drill, rec)
    _huge_batch(drill, rec)
    conn = RawConn(drill.d.socket)
    conn.send(b'{"jsonrpc":"2.0","id":1,"method":"sta')
    conn.close()
    rec.recovery_s = round(time.monotonic() - t, 3)
    drill.status()  # still serving
    held = RawConn(drill.d.socket, FRAME_TIMEOUT_S + REQUEST_BOUND_S)
    held.send(b'{"jsonrpc":"2.0","id":1,"method":"sta')
    thread = threading.Thread(target=_held_half_frame, args=(held, rec), daemon=True)
    thread.start()
    drill.late_checks.append(thread)


def _non_finite_id(drill: Drill, rec: FaultRecord) -> None:
    """``"id": 1e400`` overflows to infinity: -32600 with id null, never ``Infinity``."""
    conn = RawConn(drill.d.socket)
    replies: list[dict[str, Any] | None] = []
    try:
        conn.send(
            b'{"jsonrpc":"2.0","id":1e400,"method":"status"}\n'
            b'{"jsonrpc":"2.0","id":2,"method":"health"}\n'
        )
        for _ in range(2):
            replies.append(conn.read(REQUEST_BOUND_S))  # RawConn refuses NaN and Infinity
    except (TimeoutError, ValueError) as exc:
        rec.fail(f"non-finite id: {exc!r}")
        return
    finally:
        conn.close()
    seen = sorted(
        (((r or {}).get("error", {}).get("code", "result"), (r or {}).get("id")) for r in replies),
        key=str,
    )
    rec.detail["non_finite_id"] = seen
    if seen != sorted([(-32600, None), ("result", 2)], key=str):
        rec.fail(f"non-finite id then health on one connection: {replies}")


def _huge_batch(drill: Drill, rec: FaultRecord) -> None:
    """One message of ``rpc.discover`` calls (~1 360 × 6.6 KB of reply): -32000 and close."""
    members: list[bytes] = []
    member = b'{"jsonrpc":"2.0","id":0,"method":"rpc.discover"}'  # short: as many as fit
    while (len(members) + 1) * (len(member) + 1) + 2 < MAX_MESSAGE_BYTES:
        members.append(member)
    conn = RawConn(drill.d.socket)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send(b"[" + b",".join(members) + b"]\n")
        first = conn.read(REQUEST_BOUND_S)
        after = conn.read(REQUEST_BOUND_S) if first is not None else None
    except (TimeoutError, ValueError) as exc:
        rec.fail(f"huge batch: {exc!r}")
        return
    finally:
        conn.close()
    error = first.get("error", {}) if isinstance(first, dict) else {}
    rec.detail["huge_batch"] = {"members": len(members), "code": error.get("code")}
    refused = isinstance(first, dict) and first.get("id", 0) is None and error.get("code") == -32000
    if not refused or after is not None:
        shown = str(first)[:200]
        rec.fail(f"huge batch: expected -32000 (id null) and close, got {shown} then {after}")


def _held_half_frame(conn: RawConn, rec: FaultRecord) -> None:
    t = time.monotonic()
    try:
        first = conn.read(FRAME_TIMEOUT_S + REQUEST_BOUND_S)
        after = conn.read(REQUEST_BOUND_S) if first is not None else None
    except (TimeoutError, OSError) as exc:
        first, after = {"exception": repr(exc)}, None
    finally:
        conn.close()
    waited = round(time.monotonic() - t, 2)
    rec.detail["half_frame_held"] = {"reply": first, "after_s": waited}
    code = (first or {}).get("error", {}).get("code")
    if code != -32700 or after is not None:
        rec.fail(f"half frame held open: expected -32700 then close, got {first}, {after}")
