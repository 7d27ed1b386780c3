"""SCHEMA is the one place a key is spelled: the settings, `config show`, `config init`,
the reload plan and the docs all follow it, and drift between them fails here."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import tomllib
import types
import typing
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from n3d.cli.config import add_config_commands, run_config
from n3d.config import LogSettings, Settings, default_toml, load_settings
from n3d.config import settings as settings_module
from n3d.config.checks import boolean
from n3d.config.key import Key, make_section
from n3d.config.reload import RESTART_KEYS, plan_reload
from n3d.config.schema import SCHEMA
from n3d.errors import ConfigError

from .conftest import WriteConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
# Settings' other fields ([[servers]] is an array of tables, checked in its own module)
NOT_SECTIONS = {"servers", "file", "sources", "warnings", "pending_restart"}

FULL = """\
[ollama]
port = 11500
keep_alive = "1h30m"
[server]
command = ["/opt/ollama", "serve"]
[server.env]
A = "1"
[warm]
models = ["llama3"]
keep_alive = 3600
[log]
level = "debug"
"""


def claimed_fields(keys: Mapping[str, Key]) -> Counter[str]:
    """How many keys of a section fill each field."""
    return Counter(attr for key in keys.values() for attr in key.fields)


def check_schema_matches_settings() -> None:
    """Every section of SCHEMA is a field of Settings holding its dataclass, and every
    field of that dataclass is filled by exactly one key, and every key fills its own."""
    hints = typing.get_type_hints(Settings)
    assert set(hints) - NOT_SECTIONS == set(SCHEMA) == set(settings_module.SECTIONS)
    for section, keys in SCHEMA.items():
        cls = settings_module.SECTIONS[section]
        assert issubclass(cls, hints[section])
        names = [f.name for f in dataclasses.fields(cls)]
        claimed = claimed_fields(keys)
        assert sorted(claimed) == sorted(names), f"[{section}] keys and fields differ"
        assert [n for n, count in claimed.items() if count > 1] == [], f"[{section}]"


def test_every_field_of_the_settings_is_filled_by_exactly_one_key() -> None:
    check_schema_matches_settings()


def test_the_schema_is_well_formed() -> None:
    for section, keys in SCHEMA.items():
        for name, key in keys.items():
            where = f"{section}.{name}"
            assert key.attr, where
            if key.part_of:  # a part lives in its whole: same section, no rule of its own
                whole = keys[key.part_of]
                assert not whole.part_of and key.attr == whole.attr, where
                assert key.live and key.parsed is None, where
            if key.default is None:  # unset: `config init` shows the example commented out
                assert key.example is not None, where
                assert key.check(key.example) is not None, where
            else:
                assert key.example is None, where
                key.check(key.default)


def fits(value: object, hint: Any) -> bool:
    """Whether `value` has the annotated type, as far as the settings use types."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return value in args
    if origin in (types.UnionType, typing.Union):
        return any(fits(value, arg) for arg in args)
    if origin is tuple and args[-1] is Ellipsis:
        return isinstance(value, tuple) and all(fits(v, args[0]) for v in value)
    if origin is tuple:  # fixed length: tuple[str, str | None]
        return (
            isinstance(value, tuple)
            and len(value) == len(args)
            and all(fits(v, a) for v, a in zip(value, args, strict=True))
        )
    if origin is Mapping:
        return isinstance(value, Mapping) and all(
            fits(k, args[0]) and fits(v, args[1]) for k, v in value.items()
        )
    if hint is float:  # an int is a float to mypy too; a bool is neither here
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


@pytest.mark.parametrize("text", ["", FULL])
def test_each_field_holds_the_type_it_is_annotated_with(
    write_config: WriteConfig, text: str
) -> None:
    s = load_settings(write_config(text), {})
    for section in SCHEMA:
        values = getattr(s, section)
        for field, hint in typing.get_type_hints(type(values)).items():
            value = getattr(values, field)
            assert fits(value, hint), f"{section}.{field} = {value!r} is no {hint}"


def test_the_keys_that_wait_for_a_restart_are_those_the_docs_name() -> None:
    assert RESTART_KEYS == ("ollama.base_url", "server.mode", "socket.path", "proxy.listen")
    docs = " ".join(DOCS.read_text(encoding="utf-8").split())
    assert "(`ollama.base_url`, `server.mode`, `socket.path`, `proxy.listen`)" in docs


def test_every_key_has_its_row_in_the_docs() -> None:
    """docs/configuration.md has a `### [section]` table with one row per key, in order."""
    text = DOCS.read_text(encoding="utf-8")
    for section, keys in SCHEMA.items():
        found = re.search(rf"^### `\[{section}\]`\n(.*?)(?=^#)", text, re.M | re.S)
        assert found, f"no table for [{section}] in {DOCS.name}"
        rows = re.findall(r"^\| `([a-z_]+)` \|", found.group(1), re.M)
        assert rows == list(keys), f"[{section}] in {DOCS.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class LogWithColour(LogSettings):
    colour: bool


def _show(capsys: pytest.CaptureFixture[str], path: Path, *flags: str) -> str:
    parser = argparse.ArgumentParser(prog="n3d")
    add_config_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["config", "show", "--config", str(path), *flags])
    assert run_config(args, env={}) == 0
    return capsys.readouterr().out


def test_a_new_key_needs_only_its_key_and_its_field(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    write_config: WriteConfig,
) -> None:
    """One Key in SCHEMA and one typed field: loading, checking, `config show` (text
    and JSON), `config init`, the reload plan and typo hints all know it at once."""
    colour = Key(False, boolean, "colour the console output")
    monkeypatch.setitem(SCHEMA, "log", make_section(**SCHEMA["log"], colour=colour))
    monkeypatch.setitem(settings_module.SECTIONS, "log", LogWithColour)
    check_schema_matches_settings()

    path = write_config("[log]\ncolour = true\n")
    s = load_settings(path, {})
    assert typing.cast(LogWithColour, s.log).colour is True
    assert s.sources["log.colour"] == f"file:{path}"
    assert re.search(rf"^log\.colour = true +# file:{path}$", _show(capsys, path), re.M)
    document = json.loads(_show(capsys, path, "--json"))
    assert document["values"]["log"]["colour"] is True
    assert document["sources"]["log.colour"] == f"file:{path}"

    init = default_toml()
    assert "# colour the console output\ncolour = false\n" in init
    assert tomllib.loads(init)["log"]["colour"] is False
    defaults = load_settings(write_config(init), {})
    assert typing.cast(LogWithColour, defaults.log).colour is False

    assert plan_reload(defaults, s).changed == ("log.colour",)
    with pytest.raises(ConfigError, match="expected true or false"):
        load_settings(write_config("[log]\ncolour = 1\n"), {})
    with pytest.raises(ConfigError, match="did you mean 'colour'"):
        load_settings(write_config("[log]\ncolours = true\n"), {})
