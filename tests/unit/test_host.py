"""OLLAMA_HOST is parsed as Ollama parses it (research/ollama.md §3)."""

from __future__ import annotations

import pytest

from n3d.ollama.host import parse_ollama_host


@pytest.mark.parametrize(
    ("value", "url", "connect"),
    [
        (None, "http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("   ", "http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434", "http://1.2.3.4:11434"),
        (":1234", "http://:1234", "http://127.0.0.1:1234"),
        ("http://x", "http://x:80", "http://x:80"),
        ("https://x", "https://x:443", "https://x:443"),
        ("http://x:8080", "http://x:8080", "http://x:8080"),
        ("[::1]", "http://[::1]:11434", "http://[::1]:11434"),
        ("::1", "http://[::1]:11434", "http://[::1]:11434"),
        ("[::1]:5000", "http://[::1]:5000", "http://[::1]:5000"),
        ("https://h/path", "https://h:443/path", "https://h:443/path"),
        ("ollama.com", "https://ollama.com:443", "https://ollama.com:443"),
        ("0.0.0.0", "http://0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("0.0.0.0:9999", "http://0.0.0.0:9999", "http://127.0.0.1:9999"),
        ("[::]:9999", "http://[::]:9999", "http://[::1]:9999"),
        ('"127.0.0.1:5000"', "http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("  '127.0.0.1:5000'  ", "http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("example.com", "http://example.com:11434", "http://example.com:11434"),
    ],
)
def test_forms_from_ollamas_own_tests(value: str | None, url: str, connect: str) -> None:
    host = parse_ollama_host(value)
    assert host.url == url
    assert host.connect_url() == connect
    assert not host.port_was_invalid


@pytest.mark.parametrize("value", [":66000", ":-1", "1.2.3.4:port", "http://x:"])
def test_bad_port_falls_back_to_the_default_with_a_flag(value: str) -> None:
    host = parse_ollama_host(value)
    assert host.port_was_invalid
    assert host.port == (80 if value.startswith("http://") else 11434)


def test_port_zero_means_ephemeral_for_a_server() -> None:
    host = parse_ollama_host("127.0.0.1:0")
    assert (host.bind_host, host.port) == ("127.0.0.1", 0)
