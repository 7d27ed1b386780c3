"""The config file as text: reading it, finding a key's line, writing the defaults.

tomllib reports no positions for values, so :func:`find_line` scans the text for
the table header and the `key =` line instead; that is exact for the plain files
people write and falls back to the enclosing table otherwise.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from n3d.config.schema import SCHEMA
from n3d.errors import ConfigError

__all__ = ["default_toml", "find_entry_line", "find_line", "read_config"]

_HEADER = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?")
_ASSIGN = re.compile(r"\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")
_TOML_LINE = re.compile(r"at line (\d+)")


def read_config(path: Path) -> tuple[dict[str, Any], str] | None:
    """The parsed document and its text, or None when no file exists at `path`.

    Raises :class:`ConfigError` naming the file (and the line, for bad TOML) when
    it exists but cannot be read, is not UTF-8, or is not valid TOML.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file: {exc.strerror or exc}", file=str(path)
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise ConfigError("config file is not UTF-8 text", file=str(path), line=bad_line) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        line = int(found.group(1)) if found else None
        # The usual slips behind "Invalid value": nothing after `=`, or an unquoted string.
        hint = ""
        if "Invalid value" in str(exc):
            hint = '; is a value missing, or a string without quotes (mode = "auto")?'

        raise ConfigError(f"invalid TOML: {exc}{hint}", file=str(path), line=line) from exc
    return doc, text


def _dotted(raw: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in raw.split("."))


def find_line(text: str, dotted: str) -> int | None:
    """The 1-based line that sets `dotted` ("ollama.port"), or opens its table.

    When the exact key is not found (inline tables, odd quoting), the line of the
    nearest enclosing key or table is returned; None when nothing matches.
    """
    lines = text.splitlines()
    while dotted:
        current = ""
        for number, line in enumerate(lines, start=1):
            if header := _HEADER.fullmatch(line):
                current = _dotted(header.group(1))
                if current == dotted:
                    return number
            elif assign := _ASSIGN.match(line):
                name = _dotted(assign.group(1))
                if (f"{current}.{name}" if current else name) == dotted:
                    return number
        dotted = dotted.rpartition(".")[0]
    return None


_PREAMBLE = """\
# n3d configuration (TOML). Every key is optional; delete what you do not change.
# Reference: docs/configuration.md. Check it with: n3d config show
"""

_SECTION_NOTES = {
    "ollama": """\
# Where Ollama answers, first that is set wins: base_url here, then the
# NAMEL3SS_OLLAMA_BASE_URL variable, then host/port here, then OLLAMA_HOST, then
# http://127.0.0.1:11434. They are left unset so that the environment still counts.
""",
    "server": """\
# mode: auto     adopt a server that already answers, else start one
#       managed  always start and own `ollama serve`
#       external never start or stop it; only watch, warm, list and pull
""",
    "server.env": """\
# OLLAMA_MODELS = "/data/ollama/models"
""",
    "restart": """\
# A server that dies after a healthy run restarts at once; a start that fails
# waits backoff_initial, doubling per failed start up to backoff_max.
""",
}


# Commented out, since a default file has one server; uncommented (with a second entry),
# it is docs/configuration.md's two-GPU example. As DESIGN.md shows it.
_SERVERS_EXAMPLE = """\

# Several servers on one host (one `ollama serve` per GPU): one [[servers]] entry
# each, with its name, its base_url or port, env merged over [server].env, and the
# models pinned there. Every other key above applies to each server; [ollama]
# base_url, host and port stay unset. See docs/configuration.md, "[[servers]]".
# [[servers]]
# name = "gpu0"
# base_url = "http://127.0.0.1:11435"
# env = { CUDA_VISIBLE_DEVICES = "0" }
# models = ["llama3.1:70b"]
"""


def default_toml() -> str:
    """The whole default config file: every key at its default, with comments.

    The values are written by tomli-w; comment lines are inserted around them
    (each key's ``doc``, each section's note), and the unset keys appear only as
    their ``example`` commented out under the section's note, so that the text
    parses back to exactly the defaults. A commented ``[[servers]]`` example ends it.
    """
    doc = {
        section: {name: key.default for name, key in keys.items() if key.default is not None}
        for section, keys in SCHEMA.items()
    }
    out = [_PREAMBLE]
    section = ""
    for line in tomli_w.dumps(doc).splitlines():
        if header := _HEADER.fullmatch(line):
            section = header.group(1)
            parent, _, name = section.partition(".")
            if name:  # a table-valued key such as [server.env]: its doc goes above it
                out.append(f"# {SCHEMA[parent][name].doc}")
            out.append(line)
            if note := _SECTION_NOTES.get(section):
                out.append(note.rstrip("\n"))
            out += [
                "# " + tomli_w.dumps({name: key.example}).rstrip("\n")
                for name, key in SCHEMA.get(section, {}).items()
                if key.default is None
            ]
            continue
        assign = _ASSIGN.match(line)
        keys = SCHEMA.get(section, {})
        if assign and assign.group(1) in keys:
            out.append(f"# {keys[assign.group(1)].doc}")
        out.append(line)
    return "\n".join(out) + "\n" + _SERVERS_EXAMPLE


def find_entry_line(text: str, table: str, number: int, dotted: str) -> int | None:
    """The line that sets `dotted` ("servers.port") in the `number`-th ``[[table]]``
    (from 1), else that entry's header line; None when there is no such entry
    (``servers = [...]`` written inline, say)."""
    lines = text.splitlines()
    header = re.compile(rf"\s*\[\[\s*{re.escape(table)}\s*\]\]\s*(?:#.*)?")
    starts = [n for n, line in enumerate(lines, start=1) if header.fullmatch(line)]
    if not 1 <= number <= len(starts):
        return None
    start = starts[number - 1]
    key = dotted.split(".")[1] if "." in dotted else ""
    for n in range(start + 1, len(lines) + 1):
        line = lines[n - 1]
        if line.lstrip().startswith("["):
            break
        if key and (assign := _ASSIGN.match(line)) and _dotted(assign.group(1)) == key:
            return n
    return start
