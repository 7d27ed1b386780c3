"""Several servers in n3ctl: the blocks of `status.servers`, and one server picked by name.

Pure functions over the `status` result as a plain dict; a daemon older than
several servers (no ``servers``) reads as its one server.
"""

from __future__ import annotations

from collections.abc import Mapping

from n3d.ctl.fmt import as_dict

# typing costs n3ctl status ~2 ms to import; the hints need it only for checking.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["one_server", "server_blocks"]


def server_blocks(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``status.servers`` (each a server with its health, resources and models); from a
    daemon older than several servers, the one server the result describes."""
    blocks = [as_dict(b) for b in result.get("servers") or () if isinstance(b, dict)]
    if blocks:
        return blocks
    one = dict(as_dict(result.get("server")))
    for key in ("health", "resources", "models"):
        one[key] = as_dict(result.get(key))
    return [one]


def one_server(result: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The status as if ``name`` were the only server (None: no server of that name)."""
    block = next((b for b in server_blocks(result) if b.get("name") == name), None)
    if block is None:
        return None
    return {
        **result,
        "server": block,
        "health": block.get("health"),
        "resources": block.get("resources"),
        "models": block.get("models"),
        "servers": [block],
    }
