"""JSON-RPC 2.0 as n3d speaks it, sans-IO and standard library only.

- :mod:`~n3d.jsonrpc.framing`: NDJSON or LSP ``Content-Length`` framing, chosen per
  connection from its first byte, in linear time;
- :mod:`~n3d.jsonrpc.messages`: message shapes, error codes, encode and decode,
  shared by both sides;
- :mod:`~n3d.jsonrpc.protocol`: the server's side: requests and batches parsed,
  replies assembled, as the specification's examples show;
- :mod:`~n3d.jsonrpc.session`: the client's side: ids, calls waiting for their
  replies, ``$/progress`` by token, replies to results or errors, the end of a
  connection (and n3d's reason for it).

The socket server (:mod:`n3d.rpc`) and every client (:mod:`n3d.client`,
:mod:`n3d.client.aio`, `n3ctl`) use these same modules: a client's own code only
moves bytes. Nothing here imports anyio, structlog or anything that is not in the
standard library, and framing, messages and session not even ``typing`` or
``dataclasses`` at run time, so `n3ctl`'s hot path may import them.
"""
