"""Errors read like the seed's (their JSON-RPC codes: tests/api/test_faults.py)."""

from __future__ import annotations

from n3d.errors import ConfigError, ModelNotFound, OllamaError


def test_model_missing_reads_exactly_like_the_design_example() -> None:
    err = OllamaError.model_missing("llama3:8b", "http://localhost:11434")
    assert str(err) == (
        "Ollama model 'llama3:8b' is not available locally.\n"
        "Model: llama3:8b\n"
        "Server: http://localhost:11434\n"
        "\n"
        "Suggestion: Run: ollama pull llama3:8b\n"
        "Or enable auto_pull_model in your configuration."
    )
    assert isinstance(err, ModelNotFound)


def test_unreachable() -> None:
    cause = ConnectionRefusedError(111, "Connection refused")
    err = OllamaError.unreachable("http://127.0.0.1:11434", cause=cause)
    assert str(err).splitlines() == [
        "Could not reach Ollama server at http://127.0.0.1:11434",
        "Server: http://127.0.0.1:11434",
        "",
        "Suggestion: Ensure Ollama is running.",
        "Install: https://ollama.ai",
        "Start: ollama serve",
    ]
    assert err.__cause__ is cause and err.cause is cause


def test_context_overflow_names_the_current_num_ctx() -> None:
    err = OllamaError.context_overflow("llama3:8b", "http://h:1", 4096)
    text = str(err)
    assert text.startswith("Input is too large for model 'llama3:8b' context window.\n")
    assert text.endswith("Current context setting: 4096 tokens")
    assert "Ollama's default" in str(OllamaError.context_overflow("m", "http://h:1", 0))


def test_not_installed_and_pull_timeout() -> None:
    missing = OllamaError.not_installed("ollama", "http://h:1")
    assert str(missing).startswith("Ollama executable not found: ollama\nServer: http://h:1\n\n")
    assert "n3d run --simulate" in str(missing)
    slow = OllamaError.pull_timeout("llama3:8b", "http://h:1", 600)
    assert "no progress for 600s" in str(slow)
    assert "pull_timeout" in str(slow)


def test_message_without_context_is_just_the_message() -> None:
    assert str(OllamaError("plain")) == "plain"


def test_config_error_names_file_line_and_key() -> None:
    err = ConfigError("expected an integer", file="/c/n3d.toml", key="ollama.port", line=4)
    assert str(err) == "/c/n3d.toml:4, key 'ollama.port': expected an integer"
