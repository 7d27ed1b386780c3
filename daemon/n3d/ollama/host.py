"""`OLLAMA_HOST` parsed exactly the way Ollama parses it (`envconfig.Host`).

Ollama trims spaces and quotes, takes an optional scheme (`http` → default port 80,
`https` → 443, none → `http` with 11434), keeps a path, accepts bare IPv6 with or
without brackets, and falls back to the default port (with a warning) when the port
is not a number in 0..65535. `0.0.0.0`, `::` and an empty host mean "every
interface" to a server; :meth:`OllamaHost.connect_url` rewrites them to loopback,
because nobody can connect to "every interface".

Go's rules, not Python's, decide the edge cases (Ollama's envconfig/config.go
`Host` and `Var`): spaces are Go's `unicode.IsSpace` set (Python's ``strip`` also
drops U+001C..U+001F), the port is `strconv.ParseInt(port, 10, 32)` (ASCII digits
and a sign only: `1_000`, `١٠٠٠` or ` 80` are no port, where ``int()`` takes them),
and a bare address is printed by Go's `net.IP.String` (an IPv4-mapped `::ffff:1.2.3.4`
is `1.2.3.4`; a `%zone` is no IP for `net.ParseIP`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from n3d.ollama.gonum import parse_go_int

__all__ = ["DEFAULT_PORT", "OllamaHost", "format_hostport", "parse_ollama_host"]

DEFAULT_PORT = 11434
_UNSPECIFIED = {"", "0.0.0.0", "::"}
# Go's unicode.IsSpace: Latin-1 spaces, then the White_Space property.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)


@dataclass(frozen=True, slots=True)
class OllamaHost:
    """A parsed `OLLAMA_HOST`: what a server binds to and what a client connects to."""

    scheme: str
    host: str  # without brackets; "" means every interface
    port: int
    path: str = ""
    port_was_invalid: bool = False

    @property
    def hostport(self) -> str:
        """`host:port` as Go's `net.JoinHostPort` writes it (IPv6 in brackets)."""
        return format_hostport(self.host, self.port)

    @property
    def url(self) -> str:
        """The URL exactly as Ollama would print it (`http://:1234` for an empty host)."""
        return f"{self.scheme}://{self.hostport}" + (f"/{self.path}" if self.path else "")

    @property
    def bind_host(self) -> str:
        """The address a server listens on ("" = every interface, as Go's net.Listen)."""
        return self.host

    @property
    def connect_host(self) -> str:
        """A host a client can actually connect to: unspecified addresses become loopback."""
        if self.host in _UNSPECIFIED:
            return "::1" if self.host == "::" else "127.0.0.1"
        return self.host

    def connect_url(self) -> str:
        """The base URL a client should use (loopback instead of 0.0.0.0/::/empty)."""
        base = f"{self.scheme}://{format_hostport(self.connect_host, self.port)}"
        return base + (f"/{self.path}" if self.path else "")


def format_hostport(host: str, port: int) -> str:
    """Join host and port the way Go's `net.JoinHostPort` does."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's `net.SplitHostPort`: None where Go returns an error."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or not hostport[end + 1 :].startswith(":"):
            return None
        host, port = hostport[1:end], hostport[end + 2 :]
        if ":" in port or "[" in port or "]" in port:
            return None
        return host, port
    if hostport.count(":") != 1:
        return None  # missing port, or "too many colons" (bare IPv6)
    host, port = hostport.split(":")
    return host, port


def _parse_ip(text: str) -> str | None:
    """Go's `net.ParseIP(text).String()`, None where ParseIP fails."""
    if "%" in text:
        return None  # ipaddress takes a scope id, Go's ParseIP does not
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)  # Go's IP.String prints a 4-in-6 address as IPv4
    return str(ip)


def _parse_port(text: str) -> int | None:
    """The port Ollama accepts: `strconv.ParseInt(text, 10, 32)` within 0..65535."""
    try:
        port = parse_go_int(text, 32)
    except ValueError:
        return None
    return port if 0 <= port <= 65535 else None


def parse_ollama_host(value: str | None) -> OllamaHost:
    """Parse an `OLLAMA_HOST` value; None or blank gives `http://127.0.0.1:11434`."""
    text = (value or "").strip(_GO_SPACE).strip("\"'").strip(_GO_SPACE)
    default_port = DEFAULT_PORT
    scheme, sep, hostport = text.partition("://")
    if not sep:
        scheme, hostport = "http", text
        if text == "ollama.com":
            scheme, hostport = "https", "ollama.com:443"
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport, _, path = hostport.partition("/")
    split = _split_host_port(hostport)
    if split is None:
        host, port_text = "127.0.0.1", str(default_port)
        ip = _parse_ip(hostport.strip("[]"))
        if ip is not None:
            host = ip
        elif hostport:
            host = hostport
    else:
        host, port_text = split
    port = _parse_port(port_text)
    if port is None:
        return OllamaHost(scheme, host, default_port, path, port_was_invalid=True)
    return OllamaHost(scheme, host, port, path)
