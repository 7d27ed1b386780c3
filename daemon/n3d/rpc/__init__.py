"""The control socket's transport: JSON-RPC 2.0 over a Unix socket (docs/protocol.md).

The messages and their framing are :mod:`n3d.jsonrpc` (sans-IO, shared with the
clients); the methods the socket offers are :mod:`n3d.api`. Here:

- :mod:`~n3d.rpc.dispatch`: the method table, params checking, errors, ``Context``.
- :mod:`~n3d.rpc.listener`: the socket file (stale/live checks, 0600, activation, peers).
- :mod:`~n3d.rpc.bounds`: the per-connection limits as sans-IO bookkeeping (reply cap,
  in-flight slots, which idle connection makes room).
- :mod:`~n3d.rpc.connection`: one connection as an asyncio protocol, its life a ``State``.
- :mod:`~n3d.rpc.flow`: that protocol's flow control (pause, resume, the reply cap) and frame clock.
- :mod:`~n3d.rpc.running`: running its requests (in order, worker, cancellation by id or token).
- :mod:`~n3d.rpc.server`: accepting, peer checks, broadcasting events.
"""

from __future__ import annotations

from n3d.rpc.dispatch import Context, Handler, Method, MethodError, MethodTable, Param, Session
from n3d.rpc.server import RpcServer, serve

__all__ = [
    "Context",
    "Handler",
    "Method",
    "MethodError",
    "MethodTable",
    "Param",
    "RpcServer",
    "Session",
    "serve",
]
