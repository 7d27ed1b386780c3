"""The one error→code table: each exception's code and `data`, as DESIGN.md and docs say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from n3d.api.faults import CODES, code_of, fault_of
from n3d.api.openrpc import openrpc_document
from n3d.errors import (
    ConfigError,
    ContextOverflow,
    InvalidModelName,
    ModelNotFound,
    N3dError,
    NotManaged,
    OllamaError,
    OllamaNotInstalled,
    OllamaTimeout,
    OllamaUnreachable,
    PullFailed,
    ServerNotRunning,
    StateNotSaved,
    UnexpectedResponse,
)
from n3d.rpc.dispatch import MethodTable

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


@pytest.mark.parametrize(
    ("cls", "code", "kind"),
    [
        (OllamaUnreachable, 1001, "ollama_unreachable"),
        (ModelNotFound, 1002, "model_not_found"),
        (InvalidModelName, 1003, "invalid_model_name"),
        (PullFailed, 1004, "pull_failed"),
        (OllamaTimeout, 1005, "timeout"),
        (NotManaged, 1006, "not_managed"),
        (ContextOverflow, 1007, "context_overflow"),
        (OllamaNotInstalled, 1008, "ollama_not_installed"),
        (ServerNotRunning, 1009, "server_not_running"),
        (UnexpectedResponse, 1010, "ollama_error"),
    ],
)
def test_each_error_maps_to_its_rpc_code(cls: type[OllamaError], code: int, kind: str) -> None:
    err = cls("m", model="x:latest", base_url="http://h:1", suggestion="do this")
    fault = fault_of(err)
    assert fault is not None
    assert (fault.code, err.kind) == (code, kind)
    assert fault.data == {
        "kind": kind,
        "model": "x:latest",
        "base_url": "http://h:1",
        "suggestion": "do this",
    }
    assert isinstance(err, N3dError)


def test_data_carries_only_what_the_error_knows_in_the_documented_order() -> None:
    fault = fault_of(OllamaError.unreachable("http://h:1"))
    assert fault is not None and list(fault.data) == ["kind", "base_url", "suggestion"]
    plain = fault_of(OllamaError("plain"))  # no class of its own: Ollama's catch-all
    assert plain is not None and (plain.code, plain.message, plain.data) == (
        1010,
        "plain",
        {"kind": "ollama_error"},
    )


def test_an_unsaved_change_names_the_file_instead_of_model_and_server() -> None:
    fault = fault_of(StateNotSaved("the warm list", "/s/n3/warm.json", "disk full"))
    assert fault is not None and fault.code == 1013
    assert list(fault.data) == ["kind", "path", "suggestion"]
    assert fault.data["kind"] == "state_not_saved" and fault.data["path"] == "/s/n3/warm.json"
    assert fault.message.startswith("Could not save the warm list to /s/n3/warm.json")


@pytest.mark.parametrize(
    "exc", [RuntimeError("bug"), ConfigError("bad"), KeyError("x"), N3dError("internal")]
)
def test_anything_else_has_no_code_and_becomes_an_internal_error(exc: BaseException) -> None:
    assert code_of(exc) is None and fault_of(exc) is None


def test_no_row_is_shadowed_by_a_base_listed_before_it() -> None:
    rows = list(CODES)
    for i, cls in enumerate(rows):
        assert not any(issubclass(cls, base) for base in rows[:i]), cls.__name__


def test_the_table_is_the_one_docs_protocol_md_shows() -> None:
    section = PROTOCOL.read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    documented = {
        int(code): kind for code, kind in re.findall(r"^\| (\d{4}) \| `(\w+)`", section, re.M)
    }
    assert documented == {code: cls.kind for cls, code in CODES.items()}


def test_rpc_discover_lists_every_row_of_the_table_once_by_kind() -> None:
    errors = openrpc_document(MethodTable())["components"]["errors"]
    assert {kind: e["code"] for kind, e in errors.items()} == {
        cls.kind: code for cls, code in CODES.items()
    }
    assert all(e["data"] == {"kind": kind} for kind, e in errors.items())
    assert errors["ollama_error"]["message"] == "Ollama answered with something n3d cannot use."
