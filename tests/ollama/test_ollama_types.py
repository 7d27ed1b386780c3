"""Typed answers tolerate Ollama's drift; names match the way Ollama matches them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from n3d.errors import InvalidModelName
from n3d.ollama.types import (
    InstalledModel,
    LoadedModel,
    PullProgress,
    find_model,
    has_model,
    parse_go_time,
)


def installed(name: str) -> InstalledModel:
    return InstalledModel.from_json({"name": name, "model": name})


def test_go_time_with_nanoseconds_and_offset() -> None:
    parsed = parse_go_time("2024-06-04T14:38:31.837532521-07:00")
    assert parsed == datetime(2024, 6, 4, 14, 38, 31, 837532, tzinfo=timezone(-timedelta(hours=7)))


@pytest.mark.parametrize(
    ("text", "year"),
    [
        ("2318-09-21T03:54:27.516436197+01:00", 2318),  # keep_alive -1 ("forever")
        ("2024-01-01T00:00:00Z", 2024),
        ("2024-01-01T00:00:00.5Z", 2024),
        ("2024-01-01T00:00:00", 2024),
        ("0001-01-01T00:00:00Z", 1),  # Go's zero time
    ],
)
def test_go_times_parse(text: str, year: int) -> None:
    parsed = parse_go_time(text)
    assert parsed is not None and parsed.year == year and parsed.tzinfo is not None


@pytest.mark.parametrize("text", [None, "", "soon", "2024-13-45T99:00:00Z"])
def test_unreadable_times_are_none(text: str | None) -> None:
    assert parse_go_time(text) is None


def test_forever_and_expiring_loaded_models() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    forever = LoadedModel.from_json({"name": "a", "expires_at": "2318-09-21T03:54:27+01:00"})
    soon = LoadedModel.from_json({"name": "b", "expires_at": "2026-01-01T00:05:00Z"})
    unknown = LoadedModel.from_json({"name": "c"})
    assert forever.is_forever(now)
    assert not soon.is_forever(now)
    assert not unknown.is_forever(now) and unknown.expires is None


def test_installed_model_takes_name_or_model_and_tolerates_missing_fields() -> None:
    only_model = InstalledModel.from_json({"model": "llama3:latest"})
    assert only_model.name == only_model.model == "llama3:latest"
    assert only_model.size == 0 and only_model.details == {}


@pytest.mark.parametrize(
    "data", [{}, {"name": 3}, {"name": "x", "size": "big"}, {"name": "x", "size": True}]
)
def test_installed_model_without_usable_fields_is_rejected(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        InstalledModel.from_json(data)


def test_pull_progress_without_status_is_a_layer_line_not_an_error() -> None:
    # Ollama's client2 pull (server/internal/registry/server.go, progressUpdateJSON,
    # `status` omitempty) sends layer lines without a status; the official Python
    # client has `status: Optional[str]`. n3d names them as a classic pull does.
    digest = "sha256:6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa"
    line = PullProgress.from_json({"digest": digest, "total": 10, "completed": 4})
    assert (line.status, line.digest, line.total, line.completed) == (
        "pulling 6a0746a1ec1a",
        digest,
        10,
        4,
    )
    assert PullProgress.from_json({}).status == "pulling"
    with pytest.raises(ValueError):
        PullProgress.from_json({"status": 3})


@pytest.mark.parametrize(
    ("listed", "asked"),
    [
        ("llama3:latest", "llama3"),
        ("llama3:latest", "LLaMA3:Latest"),
        ("llama3:8b", "llama3:8b"),
        ("library/llama3:latest", "llama3"),
        ("registry.ollama.ai/library/llama3:latest", "llama3"),
        ("jmorgan/mistral:q4", "JMorgan/Mistral:Q4"),
    ],
)
def test_has_model_matches_like_ollama(listed: str, asked: str) -> None:
    assert has_model([installed("other:latest"), installed(listed)], asked)


@pytest.mark.parametrize(
    ("listed", "asked"),
    [("llama3:8b", "llama3"), ("llama3:latest", "llama3:8b"), ("me/llama3:latest", "llama3")],
)
def test_has_model_does_not_confuse_tags_or_namespaces(listed: str, asked: str) -> None:
    assert not has_model([installed(listed)], asked)


def test_has_model_accepts_strings_and_loaded_models_and_skips_bad_names() -> None:
    loaded = LoadedModel.from_json({"name": "qwen2:7b"})
    assert has_model(["not a name!", "llama3:latest"], "llama3")
    assert has_model([loaded], "Qwen2:7B")
    assert not has_model([], "llama3")


def test_find_model_returns_the_listed_entry() -> None:
    entry = installed("llama3:latest")
    assert find_model([installed("x:latest"), entry], "llama3") is entry


def test_has_model_rejects_an_invalid_query() -> None:
    with pytest.raises(InvalidModelName):
        has_model([], "llama3:")
