"""JSON-RPC 2.0 as n3d speaks it, sans-IO and standard library only.

- :mod:`~n3d.jsonrpc.framing`: NDJSON or LSP ``Content-Length`` framing, chosen per
  connection from its first byte, in linear time;
- :mod:`~n3d.jsonrpc.protocol`: messages (requests, batches, replies, error codes)
  parsed and encoded as the specification's examples show.

The socket server (:mod:`n3d.rpc`) and every client (:mod:`n3d.client`, `n3ctl`)
use these same modules; nothing here imports anyio, structlog or anything that is
not in the standard library, so `n3ctl`'s hot path may import it.
"""
