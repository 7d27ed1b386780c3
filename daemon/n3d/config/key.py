"""A config key as one value: its default, check and meaning, and where it lands.

:data:`n3d.config.schema.SCHEMA` is made of these. Besides what the file may say
(``default``, ``check``, ``doc``), a :class:`Key` names the field of the settings
that holds its value (``attr``, ``parsed``), how `n3d config show` shows it
(``show``) and whether a reload may change it (``live``), so that building the
settings, showing them, writing the default file and planning a reload are all
derived from the one table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from n3d.config.checks import Check

__all__ = ["Convert", "Key", "make_section", "shown"]

Convert = Callable[[Any], Any]


def shown(value: Any) -> Any:
    """A settings value as `config show` and `config.get` show it, TOML- and JSON-able:
    tuples as lists, read-only tables as plain dicts, everything else as it is."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


@dataclass(frozen=True, slots=True)
class Key:
    """One config key, and where its value lands in the settings.

    - ``default``: the TOML default; None = unset: left out of the file `n3d config
      init` writes, where ``example`` is shown commented out instead;
    - ``check``: turns the raw TOML value into the typed value, or raises Invalid;
    - ``doc``: the comment above the key in that file;
    - ``attr``: the field of the section's settings dataclass that holds the value:
      the key's own name unless given (``model_cache_ttl`` lands on
      ``model_cache_ttl_s``: inside the code, units are in the names);
    - ``parsed``: a second field that holds the value converted, and the conversion
      (``keep_alive`` as written → ``keep_alive_s``, in seconds);
    - ``part_of``: the key of the same section that this one only helps to build
      (``host`` and ``port`` → ``base_url``): no field and no restart rule of its
      own; it is shown from that key's field, which :func:`make_section` makes its
      ``attr``;
    - ``show``: the field's value as `n3d config show` and `config.get` show it;
    - ``live``: False when a new value waits for a restart of n3d rather than
      applying at a reload (:mod:`n3d.config.reload`); a comment beside says why.
    """

    default: Any
    check: Check
    doc: str
    attr: str = ""
    parsed: tuple[str, Convert] | None = None
    part_of: str | None = None
    example: Any = None
    show: Convert = shown
    live: bool = True

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields of the section's settings this key fills (none for a part)."""
        if self.part_of:
            return ()
        return (self.attr, self.parsed[0]) if self.parsed else (self.attr,)

    def land(self, value: Any) -> dict[str, Any]:
        """The checked ``value`` as the field values it gives the section's settings.

        Not for a part of another key, whose value went into that key's.
        """
        assert not self.part_of, "a part has no field of its own"
        if self.parsed:
            attr, convert = self.parsed
            return {self.attr: value, attr: convert(value)}
        return {self.attr: value}


def make_section(**keys: Key) -> dict[str, Key]:
    """One section's keys by TOML name, in file order, each ``attr`` filled in."""
    named = {name: replace(key, attr=key.attr or name) for name, key in keys.items()}
    return {
        name: replace(key, attr=named[key.part_of].attr) if key.part_of else key
        for name, key in named.items()
    }
