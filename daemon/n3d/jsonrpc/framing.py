"""Per-connection framing, sans-IO: NDJSON or LSP ``Content-Length``, auto-detected.

The first non-blank byte of a connection decides, once, for its lifetime:

- ``{`` or ``[`` → NDJSON: one JSON text per ``\\n``-terminated line; a trailing
  ``\\r`` and blank lines are ignored. What ``socat``, ``nc`` and Vim's ``nl``
  channels speak.
- ``C`` or ``c`` → LSP base protocol: ``Name: value`` header lines, a blank
  line, then exactly ``Content-Length`` bytes. Header names are matched
  case-insensitively, other headers (``Content-Type``) are ignored, and bare
  ``\\n`` line ends are accepted for hand-typed input. What vscode-jsonrpc,
  Emacs jsonrpc.el and Neovim's ``vim.lsp.rpc`` speak. A repeated
  ``Content-Length`` (or a comma list) is accepted only when every value is the
  same, as RFC 9112 §6.3 allows; differing values are fatal (which one frames
  the body is what request smuggling plays on).

Replies are framed the same way (:meth:`Framer.frame`); before detection, NDJSON.

Fatal errors end the connection: anything else as first byte, a line or body
longer than ``max_message_bytes``, a header block over 8 KiB, a missing,
negative, non-numeric, conflicting or oversized ``Content-Length``.
:meth:`Framer.feed` then returns a :class:`FrameError` as its last item and
ignores all later input; the server answers it with ``-32700 Parse error``
(``id: null``: nothing was parsed, so no id can be known) and closes. -32700
rather than -32600 because the bytes were never read as JSON at all.
"""

from __future__ import annotations

# The clients' session uses this module on `n3ctl status`'s path: no `typing` or
# `dataclasses` at run time (several milliseconds each); type checkers see the hints.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, TypeAlias

    Framing: TypeAlias = Literal["ndjson", "lsp"]
else:  # the name at run time, for modules that import it
    Framing = str

__all__ = ["MAX_HEADER_BYTES", "FrameError", "Framer", "Framing"]

# LSP headers are one or two short lines; 8 KiB is generous and bounds the scan.
MAX_HEADER_BYTES = 8192
_BLANK = b" \t\r\n"
# Longer than any length max_message_bytes can allow; stops int() on a megabyte of digits.
_MAX_LENGTH_DIGITS = 15


def _bad_start(first: int) -> str:
    return f"Parse error: a message starts with '{{', '[' or 'Content-Length', not {chr(first)!r}"


class FrameError:
    """The stream cannot be framed any further; ``message`` says why (for the error reply)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"FrameError({self.message!r})"


class Framer:
    """Splits one connection's byte stream into message bodies and frames replies.

    ``feed`` is incremental and linear in the bytes fed: a partial line is never
    rescanned and a known body length is waited for without re-parsing headers.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.framing: Framing | None = None
        self.failed = False
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed input in _buf
        self._scan = 0  # NDJSON: no newline before this offset
        self._body_at = -1  # LSP: offset where the awaited body starts
        self._body_len = 0

    @property
    def pending(self) -> bool:
        """True while a frame has started but not completed (for the partial-frame timeout)."""
        return not self.failed and len(self._buf) > self._pos

    def frame(self, body: bytes) -> bytes:
        """``body`` (compact JSON, no raw newline) framed as this connection expects."""
        if self.framing == "lsp":
            return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        return body + b"\n"

    def frame_in_place(self, body: bytearray) -> bytearray:
        """:meth:`frame` without a copy of ``body`` (a batch reply of up to the cap)."""
        if self.framing == "lsp":
            body[0:0] = b"Content-Length: %d\r\n\r\n" % len(body)
        else:
            body += b"\n"
        return body

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Add received bytes; return the complete bodies, then a FrameError if fatal."""
        if self.failed:
            return []
        self._buf += data
        out: list[bytes | FrameError] = []
        while True:
            self._skip_blank()
            if self._pos >= len(self._buf):
                break
            if self.framing is None:
                first = self._buf[self._pos]
                if first in b"{[":
                    self.framing = "ndjson"
                elif first in b"Cc":
                    self.framing = "lsp"
                else:
                    out.append(self._fail(_bad_start(first)))
                    break
            item = self._next_line() if self.framing == "ndjson" else self._next_lsp()
            if item is None:
                break
            out.append(item)
            if isinstance(item, FrameError):
                break
        self._compact()
        return out

    def _fail(self, message: str) -> FrameError:
        self.failed = True
        self._buf.clear()
        self._pos = 0
        return FrameError(message)

    def _too_big(self, size: int | str) -> FrameError:
        return self._fail(
            f"Parse error: message of {size} bytes exceeds max_message_bytes "
            f"({self.max_message_bytes})"
        )

    def _skip_blank(self) -> None:
        # Only between frames: inside an LSP body every byte counts.
        if self._body_at >= 0:
            return
        buf, pos = self._buf, self._pos
        while pos < len(buf) and buf[pos] in _BLANK:
            pos += 1
        self._pos = pos
        self._scan = max(self._scan, pos)

    def _compact(self) -> None:
        # Drop consumed bytes once per feed, not per frame (keeps feed linear).
        if self._pos:
            del self._buf[: self._pos]
            self._scan = max(0, self._scan - self._pos)
            if self._body_at >= 0:
                self._body_at -= self._pos
            self._pos = 0

    def _next_line(self) -> bytes | FrameError | None:
        newline = self._buf.find(b"\n", self._scan)
        if newline < 0:
            if len(self._buf) - self._pos > self.max_message_bytes:
                return self._too_big(f"more than {self.max_message_bytes}")
            self._scan = len(self._buf)
            return None
        line = bytes(self._buf[self._pos : newline]).rstrip(_BLANK)
        self._pos = self._scan = newline + 1
        if len(line) > self.max_message_bytes:
            return self._too_big(len(line))
        return line

    def _next_lsp(self) -> bytes | FrameError | None:
        if self._body_at < 0:
            header = self._read_header()
            if header is not True:
                return header
        end = self._body_at + self._body_len
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[self._body_at : end])
        self._pos, self._body_at = end, -1
        return body

    def _read_header(self) -> FrameError | None | Literal[True]:
        """Parse a complete header block and set the awaited body; None if incomplete."""
        buf, pos = self._buf, self._pos
        limit = min(len(buf), pos + MAX_HEADER_BYTES + 4)
        crlf, lf = buf.find(b"\r\n\r\n", pos, limit), buf.find(b"\n\n", pos, limit)
        ends = [(i, n) for i, n in ((crlf, 4), (lf, 2)) if i >= 0]
        if not ends:
            if len(buf) - pos > MAX_HEADER_BYTES:
                return self._fail(f"Parse error: header block longer than {MAX_HEADER_BYTES} bytes")
            return None
        end, sep = min(ends)
        length: int | None = None
        for raw in bytes(buf[pos:end]).split(b"\n"):
            line = raw.strip()
            if not line:
                continue
            name, colon, value = line.partition(b":")
            if not colon:
                shown = line[:40].decode("ascii", "replace")
                return self._fail(f"Parse error: malformed header line {shown!r}")
            if name.strip().lower() != b"content-length":
                continue  # Content-Type and anything else: ignored, UTF-8 is assumed
            # RFC 9112 §6.3: repeated lines are one comma-separated list; its values
            # must all be valid and equal, else the framing is lost: fatal.
            for item in value.split(b","):
                item = item.strip()
                if not item.isdigit() or len(item) > _MAX_LENGTH_DIGITS:
                    shown = value.strip()[:20].decode("ascii", "replace")
                    return self._fail(f"Parse error: invalid Content-Length {shown!r}")
                if length is not None and int(item) != length:
                    return self._fail(
                        f"Parse error: conflicting Content-Length values {length} and {int(item)}"
                    )
                length = int(item)
        if length is None:
            return self._fail("Parse error: header block without Content-Length")
        if length > self.max_message_bytes:
            return self._too_big(length)
        self._body_at, self._body_len = end + sep, length
        return True
