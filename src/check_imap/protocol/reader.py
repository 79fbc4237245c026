"""Bytes to responses: line splitting with literals, bounded, and tolerant parsing."""

from __future__ import annotations

from .records import ProtocolError

MAX_LINE = 64 * 1024
"""No response line (literals included) longer than this is ever buffered."""

MAX_DIGITS = 20
"""RFC 9051 numbers fit in 63 bits; 20 digits bound every number we convert."""


class Response:
    """One server response: ``tag`` is ``*``, ``+`` or a command tag."""

    __slots__ = ("code", "kind", "raw", "tag", "text")

    def __init__(self, tag: str, kind: str, code: str, text: str, raw: bytes) -> None:
        self.tag = tag
        self.kind = kind  # first atom after the tag, upper-cased: OK, NO, BYE, CAPABILITY ...
        self.code = code  # text inside a leading [...] response code, "" if none
        self.text = text  # human-readable rest of the line (after the code)
        self.raw = raw  # the whole response without its final line ending

    def said(self) -> str:
        """``NO [CODE] text`` as a person reads it."""
        code = f"[{self.code}] " if self.code else ""
        return f"{self.kind or '(nothing)'} {code}{self.text}".strip()


def decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def parse_response(line: bytes) -> Response:
    """Split a response line; tolerant of anything (never raises)."""
    tag, _, rest = line.partition(b" ")
    kind_b, _, after = rest.partition(b" ")
    kind = decode(kind_b).upper()
    code = ""
    if kind in ("OK", "NO", "BAD", "BYE", "PREAUTH") and after.startswith(b"["):
        end = after.find(b"]")
        if end > 0:
            code = decode(after[1:end])
            after = after[end + 1 :].lstrip(b" ")
    return Response(decode(tag), kind, code, decode(after), line)


def number(text: str, what: str) -> int:
    """An IMAP number: ASCII digits only (``²`` and ``٣`` are digits to ``str.isdigit``)."""
    if not (0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()):
        shown = text[:30] + ("..." if len(text) > 30 else "")
        raise ProtocolError(f"server sent an invalid number {shown!r} in {what}")
    return int(text)


_NOT_IN_TAGS = frozenset('(){%*"\\+')


def is_tag(text: str) -> bool:
    """A command tag as RFC 9051 spells it: ASTRING-CHARs except ``+``, so no ``*``.

    Anything else in a tag's place (control bytes, an empty line) is garbage, not a reply.
    """
    return bool(text) and all("!" <= ch <= "~" and ch not in _NOT_IN_TAGS for ch in text)


def capabilities_from(text: str) -> tuple[str, ...]:
    """``IMAP4rev1 STARTTLS`` (code or untagged text) -> upper-cased atoms."""
    return tuple(atom.upper() for atom in text.split())


class ResponseReader:
    """Splits a byte stream into responses: CRLF or bare LF, ``{n}`` literals, bounded."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for a line end: O(n) on drip-feed
        self._literal_left = 0
        self._pending = bytearray()  # a response being assembled across literals

    def feed(self, data: bytes) -> list[Response]:
        """Add bytes; return the responses they complete. ProtocolError past the bound."""
        self._buf += data
        out: list[Response] = []
        while True:
            if self._literal_left:
                take = min(self._literal_left, len(self._buf))
                self._pending += self._buf[:take]
                del self._buf[:take]
                self._literal_left -= take
                self._check_size(len(self._pending))
                if self._literal_left:
                    return out
                self._scanned = 0
            nl = self._buf.find(b"\n", self._scanned)
            if nl < 0:
                self._scanned = len(self._buf)
                self._check_size(len(self._pending) + len(self._buf))
                return out
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            self._scanned = 0
            if line.endswith(b"\r"):
                line = line[:-1]
            self._pending += line
            self._check_size(len(self._pending))
            size = _literal_size(line)
            if size is not None:
                self._pending += b"\r\n"
                self._literal_left = size
                self._check_size(len(self._pending) + size)
                continue
            out.append(parse_response(bytes(self._pending)))
            self._pending.clear()

    @property
    def buffered(self) -> bytes:
        """Bytes received but not yet part of a complete response."""
        return bytes(self._pending + self._buf)

    def _check_size(self, size: int) -> None:
        if size > self._max:
            raise ProtocolError(f"server sent a line longer than {self._max} bytes")


def _literal_size(line: bytes) -> int | None:
    """``{123}`` (or ``{123+}``) at the end of a line announces a literal."""
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    if start < 0:
        return None
    digits = line[start + 1 : -1].rstrip(b"+")
    if not digits.isdigit() or len(digits) > 10:  # bytes.isdigit is ASCII-only
        return None
    return int(digits)
