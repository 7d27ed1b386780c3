"""Credentials in URLs are hidden wherever n3d shows a URL (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from n3d.api.faults import fault_of
from n3d.config import load_settings
from n3d.errors import ConfigError, OllamaError
from n3d.redact import redact_url


@pytest.mark.parametrize(("given", "shown"), [
    ("http://user:pw@host:11434", "http://***@host:11434"),
    ("https://token@proxy/ollama", "https://***@proxy/ollama"),
    ("http://a@b:c@host", "http://***@host"),
    ("http://host:11434", "http://host:11434"),
    ("http://host/path@not-userinfo", "http://host/path@not-userinfo"),
    ("Could not reach http://u:p@h:1 (mail admin@example.org)",
     "Could not reach http://***@h:1 (mail admin@example.org)"),
])
def test_userinfo_is_hidden_and_nothing_else_changes(given: str, shown: str) -> None:
    assert redact_url(given) == shown


def test_errors_never_carry_a_password() -> None:
    err = OllamaError.unreachable("http://u:pw@h:1")
    assert "pw" not in str(err) and err.base_url == "http://***@h:1"
    fault = fault_of(err)
    assert fault is not None and fault.data["base_url"] == "http://***@h:1"


def test_a_bad_base_url_with_a_password_is_quoted_without_it(tmp_path: Path) -> None:
    path = tmp_path / "n3d.toml"
    path.write_text('[ollama]\nbase_url = "http://u:pw@h:99999"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert "pw" not in str(caught.value) and "http://***@h:99999" in str(caught.value)
