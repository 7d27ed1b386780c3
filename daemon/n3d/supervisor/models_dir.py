"""Where a server keeps its models, and `OLLAMA_NOPRUNE` for servers that share the place.

A starting `ollama serve` prunes the blobs of its models directory that no
manifest it knows names (Ollama #2358, #8891): two serves on one directory
delete each other's half-pulled models. Ollama skips that when
``OLLAMA_NOPRUNE`` is set, so servers that share a directory get
``OLLAMA_NOPRUNE=1`` (a value the user set, in n3d's environment or the server's
``env``, is kept as it is).

A server's directory is ``OLLAMA_MODELS`` of its child's environment (the same
merge :func:`~n3d.supervisor.spawn.child_environment` makes: n3d's environment,
then ``[server].env``, then the entry's ``env``), else ``~/.ollama/models`` as
Ollama's default; ``~`` is expanded with that environment's ``HOME`` and the
paths are compared resolved (symlinks followed where they exist). Pure: nothing
here touches a process, only the file system's view of a path.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from n3d.supervisor.spawn import child_environment

__all__ = ["NOPRUNE", "models_dir", "shared_models_dirs", "with_noprune"]

NOPRUNE = "OLLAMA_NOPRUNE"
_DEFAULT = os.path.join("~", ".ollama", "models")  # Ollama's envconfig.Models()


def models_dir(base: Mapping[str, str], extra: Mapping[str, str]) -> Path:
    """The models directory a child started with ``base`` + ``extra`` uses, resolved."""
    env = child_environment(base, ollama_host="", extra=extra)
    written = env.get("OLLAMA_MODELS") or _DEFAULT
    home = env.get("HOME")
    if written == "~" or written.startswith("~" + os.sep):
        expanded = (home + written[1:]) if home else os.path.expanduser(written)
    else:
        expanded = os.path.expanduser(written)  # ~user, or no tilde at all
    return Path(expanded).resolve()


def shared_models_dirs(
    base: Mapping[str, str], servers: Mapping[str, Mapping[str, str]]
) -> frozenset[str]:
    """The names (of ``servers``: name → the server's env) whose directory another shares."""
    dirs = {name: models_dir(base, env) for name, env in servers.items()}
    count = Counter(dirs.values())
    return frozenset(name for name, found in dirs.items() if count[found] > 1)


def with_noprune(base: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """``env`` (a server's own) with ``OLLAMA_NOPRUNE=1``, unless set in it or in ``base``."""
    if NOPRUNE in env or NOPRUNE in base:
        return dict(env)
    return {**env, NOPRUNE: "1"}
