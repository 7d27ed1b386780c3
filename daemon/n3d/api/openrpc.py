"""`rpc.discover`: an OpenRPC document generated from the method table itself.

The table the server dispatches on is the only source: a method added there is
described here, with its params' names, JSON types, required flags and summaries.
The errors are the rows of the one error→code table, :data:`n3d.api.faults.CODES`.
"""

from __future__ import annotations

from typing import Any

from n3d import __version__
from n3d.api.faults import CODES
from n3d.rpc.dispatch import MethodTable

__all__ = ["openrpc_document"]

OPENRPC_VERSION = "1.3.2"


def _schema(type_names: list[str]) -> dict[str, Any]:
    return {"type": type_names[0]} if len(type_names) == 1 else {"type": type_names}


def _errors() -> dict[str, dict[str, Any]]:
    """OpenRPC Components.errors: a map of Error objects, keyed by `data.kind`.

    A kind listed twice (a base class and its subclass) is described by its first row.
    """
    errors: dict[str, dict[str, Any]] = {}
    for cls, code in sorted(CODES.items(), key=lambda row: row[1]):
        if cls.kind not in errors:
            summary = (cls.__doc__ or cls.kind).strip().splitlines()[0]
            errors[cls.kind] = {"code": code, "message": summary, "data": {"kind": cls.kind}}
    return errors


def openrpc_document(table: MethodTable) -> dict[str, Any]:
    """Every method of ``table`` as an OpenRPC 1.3 document (by-name params)."""
    methods = []
    for method in sorted(table, key=lambda m: m.name):
        methods.append(
            {
                "name": method.name,
                "summary": method.summary,
                "paramStructure": "either",
                "params": [
                    {
                        "name": p.name,
                        "required": p.required,
                        "description": p.description,
                        "schema": _schema(p.type_names),
                    }
                    for p in method.params
                ],
                "result": {"name": "result", "schema": {"type": "object"}},
            }
        )
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "n3d control socket",
            "version": __version__,
            "description": "JSON-RPC 2.0 over a Unix socket; NDJSON or LSP framing.",
        },
        "methods": methods,
        "components": {"errors": _errors()},
    }
