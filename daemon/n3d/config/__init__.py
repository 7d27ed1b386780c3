"""n3d's configuration: one TOML file, the environment and defaults, as frozen settings.

- :mod:`~n3d.config.schema`: every key once (default, check, meaning, where it lands);
- :mod:`~n3d.config.key`: what a key says, and how the settings are derived from it;
- :mod:`~n3d.config.checks`: the checks a value passes (types, names, URLs);
- :mod:`~n3d.config.durations`: the checks of durations (floors, Go durations, keep_alive);
- :mod:`~n3d.config.file`: reading the file (line numbers for errors) and writing it;
- :mod:`~n3d.config.url`: where the Ollama URL comes from (DESIGN.md's five steps);
- :mod:`~n3d.config.servers`: `[[servers]]` entries as :class:`ServerSpec` values;
- :mod:`~n3d.config.warm`: `[warm] models` entries, and which server warms each;
- :mod:`~n3d.config.settings`: the :class:`Settings` values and :func:`load_settings`;
- :mod:`~n3d.config.reload`: the pure reload plan (what applies now, what waits).

docs/configuration.md describes every key.
"""

from __future__ import annotations

from n3d.config.file import default_toml
from n3d.config.servers import ServerSpec
from n3d.config.settings import (
    DEFAULT_BASE_URL,
    LivenessSettings,
    LogSettings,
    OllamaSettings,
    RestartSettings,
    ServerSettings,
    Settings,
    SocketSettings,
    WarmSettings,
    load_settings,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "LivenessSettings",
    "LogSettings",
    "OllamaSettings",
    "RestartSettings",
    "ServerSettings",
    "ServerSpec",
    "Settings",
    "SocketSettings",
    "WarmSettings",
    "default_toml",
    "load_settings",
]
