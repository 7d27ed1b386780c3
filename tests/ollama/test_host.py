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


# Ollama's envconfig.Host (envconfig/config.go:22-59 at HEAD, 19-56 in v0.13.5) reads the
# port with strconv.ParseInt(port, 10, 32) and falls back to the default on any error:
# Go's ParseInt takes an optional sign and ASCII digits only, where Python's int() also
# takes underscores, any Unicode decimal digit and surrounding whitespace.
@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1:1_000",
        "127.0.0.1:١٠٠٠",  # Arabic-Indic digits
        "127.0.0.1:１０００",  # fullwidth digits
        "127.0.0.1: 8080",
        "127.0.0.1:2147483648",  # beyond 32 bits
        "127.0.0.1:0x50",
    ],
)
def test_ports_gos_parseint_rejects_fall_back_to_the_default(value: str) -> None:
    host = parse_ollama_host(value)
    assert host.port == 11434
    assert host.port_was_invalid


@pytest.mark.parametrize(("value", "port"), [("h:+80", 80), ("h:0080", 80), ("h:-0", 0)])
def test_ports_gos_parseint_accepts(value: str, port: int) -> None:
    host = parse_ollama_host(value)
    assert (host.port, host.port_was_invalid) == (port, False)


@pytest.mark.parametrize(
    ("value", "url"),
    [
        # A bare address goes through net.ParseIP(...).String() (config.go:43), which
        # prints an IPv4-mapped IPv6 address as IPv4 ...
        ("::ffff:1.2.3.4", "http://1.2.3.4:11434"),
        ("[::ffff:1.2.3.4]", "http://1.2.3.4:11434"),
        ("::ffff:0.0.0.0", "http://0.0.0.0:11434"),
        # ... but a host:port is kept as written (SplitHostPort succeeded) ...
        ("[::ffff:1.2.3.4]:80", "http://[::ffff:1.2.3.4]:80"),
        # ... and ParseIP takes no %zone, so that stays the "host" as written.
        ("fe80::1%eth0", "http://[fe80::1%eth0]:11434"),
    ],
)
def test_addresses_print_like_gos_ip_string(value: str, url: str) -> None:
    assert parse_ollama_host(value).url == url


def test_only_gos_spaces_are_trimmed() -> None:
    # envconfig.Var and Host trim with strings.TrimSpace (unicode.IsSpace): an
    # ideographic space goes, U+001C (a space to Python's str.strip) stays.
    assert parse_ollama_host("\u3000127.0.0.1:5000\u3000").url == "http://127.0.0.1:5000"
    assert parse_ollama_host("\x1c127.0.0.1:5000").url == "http://\x1c127.0.0.1:5000"
