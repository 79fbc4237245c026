"""IMAP strings both ways: modified UTF-7 mailbox names, astrings, and response lists.

Pure functions, no I/O. RFC 3501 §5.1.3 (modified UTF-7), §4.3 (strings), §9 (grammar).
"""

from __future__ import annotations

import base64

from .reader import number

# Characters a quoted string cannot carry: they force a literal.
_NEEDS_LITERAL = frozenset("\r\n\0")


def encode_mailbox(name: str) -> str:
    """Modified UTF-7: printable ASCII stays (``&`` becomes ``&-``), the rest is base64."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")
            out.append(f"&{b64}-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def astring_parts(value: str) -> list[bytes]:
    """``value`` as IMAP astring pieces: one quoted string, or a literal split in two.

    A literal (``{n}``) needs the server's ``+`` continuation before its bytes, so it
    comes back as two parts: the caller sends the second after the continuation.
    """
    data = value.encode("utf-8")
    if any(ch in _NEEDS_LITERAL for ch in value) or any(b > 0x7E for b in data):
        return [b"{%d}" % len(data), data]
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return [f'"{escaped}"'.encode("ascii")]


def read_astring(text: str) -> tuple[str, str]:
    """Take one astring (atom, quoted, or literal as received) off ``text``: (value, rest)."""
    text = text.lstrip(" ")
    if text.startswith('"'):
        out: list[str] = []
        i = 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                return "".join(out), text[i + 1 :]
            out.append(ch)
            i += 1
        return "".join(out), ""
    if text.startswith("{"):
        close = text.find("}\r\n")
        digits = text[1:close].rstrip("+") if close > 0 else ""
        if digits.isascii() and digits.isdigit() and len(digits) <= 10:
            size = int(digits)
            start = close + 3
            return text[start : start + size], text[start + size :]
    atom, _, rest = text.partition(" ")
    return atom, rest


def paren_pairs(text: str) -> dict[str, int]:
    """The last ``(NAME number NAME number ...)`` of a response, upper-cased names.

    ProtocolError when a value is not an IMAP number (the caller names the response).
    """
    start = text.rfind("(")
    end = text.find(")", start)
    if start < 0 or end < 0:
        return {}
    words = text[start + 1 : end].split()
    pairs: dict[str, int] = {}
    for name, value in zip(words[::2], words[1::2]):
        pairs[name.upper()] = number(value, name.upper())
    return pairs


def quota_triples(text: str) -> dict[str, tuple[int, int]]:
    """``(STORAGE 10 512 MESSAGE 3 100)`` -> {"STORAGE": (10, 512), "MESSAGE": (3, 100)}."""
    start = text.rfind("(")
    end = text.find(")", start)
    if start < 0 or end < 0:
        return {}
    words = text[start + 1 : end].split()
    triples: dict[str, tuple[int, int]] = {}
    for i in range(0, len(words) - 2, 3):
        name, usage, limit = words[i : i + 3]
        triples[name.upper()] = (number(usage, name.upper()), number(limit, name.upper()))
    return triples
