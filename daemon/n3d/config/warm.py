"""`[warm] models` entries, and which server warms each.

An entry is a model name, or an inline table ``{ model = "llama3.1:70b", server =
"gpu1" }`` that names the server (TOML arrays may mix both). Not ``"gpu1/llama3"``:
model names contain ``/`` (namespaces), so that form would be ambiguous. Where each
entry is warmed is decided in one place, :func:`warm_here`.
"""

from __future__ import annotations

from n3d.config.checks import Invalid, describe, model_entries, model_name
from n3d.config.servers import NAME, ServerSpec
from n3d.ollama.names import same_model

__all__ = ["Placed", "show_warm", "warm_here", "warm_list", "warm_names", "warm_servers"]

Placed = tuple[str, str | None]
"""A `[warm] models` entry: (model, the server it names or None)."""


def _warm_entry(value: object) -> Placed:
    if not isinstance(value, dict):
        return model_name(value), None
    for key in value:
        if key not in ("model", "server"):
            raise Invalid(
                f"unknown key '{key}' in a warm entry; expected "
                '{ model = "llama3.1:70b", server = "gpu1" }'
            )
    if "model" not in value:
        raise Invalid('a warm entry table needs a model, like { model = "llama3.1:70b" }')
    server = value.get("server")
    if server is not None and (not isinstance(server, str) or not NAME.fullmatch(server)):
        raise Invalid(f'expected a server name like "gpu1", got {describe(server)}')
    return model_name(value["model"]), server


def warm_list(value: object) -> tuple[Placed, ...]:
    """`[warm] models`: model names, or tables ``{ model = "m", server = "gpu1" }``."""
    return model_entries(value, _warm_entry)


def warm_names(placed: tuple[Placed, ...]) -> tuple[str, ...]:
    """The models of `[warm] models`, without their servers."""
    return tuple(model for model, _ in placed)


def show_warm(placed: tuple[Placed, ...]) -> list[str | dict[str, str]]:
    """`[warm] models` as written: strings, and tables for the entries naming a server."""
    return [
        model if server is None else {"model": model, "server": server} for model, server in placed
    ]


def warm_servers(placed: tuple[Placed, ...], servers: tuple[ServerSpec, ...]) -> str | None:
    """The message for the first warm entry naming a server that does not exist, or None."""
    names = [spec.name for spec in servers]
    for i, (model, server) in enumerate(placed, start=1):
        if server is not None and server not in names:
            listed = ", ".join(names)  # a few names: all of them help more than a guess
            return f'entry {i} ({model}): no server named "{server}"; the servers are: {listed}'
    return None


def warm_here(
    placed: tuple[Placed, ...], servers: tuple[ServerSpec, ...], name: str
) -> tuple[Placed, ...]:
    """The `[warm] models` entries server `name` warms, then the models pinned there.

    A table names its server; a string goes to every server whose ``models`` names
    it, else to the first server. Every model in a server's ``models`` is warmed
    there. Each model once (``llama3`` and ``llama3:latest`` are one), as written.
    """
    spec = next(s for s in servers if s.name == name)

    def pinned(model: str) -> list[str]:
        return [s.name for s in servers if any(same_model(model, m) for m in s.models)]

    out: list[Placed] = []
    for model, server in placed:
        where = [server] if server is not None else (pinned(model) or [servers[0].name])
        if name in where:
            out.append((model, server))
    out += [(model, name) for model in spec.models]
    unique: list[Placed] = []
    for entry in out:
        if not any(same_model(entry[0], kept) for kept, _ in unique):
            unique.append(entry)
    return tuple(unique)
