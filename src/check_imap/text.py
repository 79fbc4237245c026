"""The one output boundary: every text that reaches stdout passes through ``sanitize``.

It removes the password in every form it can take on the wire (raw, quoted, inside a
SASL PLAIN token), then makes the text one safe line. Redacting here, and only here,
means a new output channel cannot forget it. Shared by check_imap and notify_on_change.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

LIMIT = 160
REDACTED = "[redacted]"

_secrets: list[str] = []  # longest first, so a quoted form goes before the raw password
_pattern: list[re.Pattern[str]] = []  # one regex of them all, in any letter case


def add_secret(password: str, user: str = "") -> None:
    """Register a password (and the forms it takes in IMAP and SASL) for redaction.

    Matching ignores letter case: server text is upper-cased on its way in (capability
    atoms are), and an upper-cased password is still the password.
    """
    if not password:
        return
    import base64  # only when there is a password: most checks have none
    import re

    def b64(data: str) -> str:
        return base64.b64encode(data.encode("utf-8", "surrogateescape")).decode("ascii")

    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    forms = {password, escaped, f'"{escaped}"', b64(f"\0{user}\0{password}"), b64(password)}
    forms |= {form.upper() for form in forms}  # "ß".upper() is "SS": no case rule covers it
    _secrets.extend(forms)
    _secrets.sort(key=len, reverse=True)
    _pattern[:] = [re.compile("|".join(map(re.escape, _secrets)), re.IGNORECASE)]


def redact(text: str) -> str:
    """Every secret becomes REDACTED; a REDACTED already there is left whole, so that a
    second pass (the output boundary runs one) cannot eat into it when the password is
    part of the marker ("act")."""
    if not _pattern:
        return text
    return REDACTED.join(_pattern[0].sub(REDACTED, part) for part in text.split(REDACTED))


def sanitize(data: str | bytes, limit: int = LIMIT) -> str:
    """No secret, no control characters, no ``|`` (it starts perfdata), one bounded line.

    Invalid UTF-8 becomes U+FFFD; anything unprintable becomes ``?``; ``|`` becomes ``/``.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    longest = len(_secrets[0]) if _secrets else 0
    if len(text) > limit * 2 + longest:
        text = text[: limit * 2 + longest]  # bound the work; what is cut is never shown
    text = redact(text)
    cleaned = "".join(
        "/" if ch == "|" else ch if ch == " " or ch.isprintable() else "?" for ch in text
    )
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 3].rstrip() + "..."
    return cleaned


def not_utf8(value: str) -> bool:
    """True if ``value`` came from bytes that are not UTF-8 (Python's surrogateescape)."""
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def help_width() -> int:
    """The width argparse gives --help, found as shutil.get_terminal_size finds it.

    argparse imports shutil for this on every add_argument, and shutil drags in bz2,
    lzma and fnmatch: about 1.5 ms of each start-up for one ioctl. Pass it as
    ``formatter_class=lambda prog: argparse.HelpFormatter(prog, width=help_width())``.
    """
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    stream = sys.__stdout__
    if columns <= 0 and stream is not None:
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (ValueError, OSError):
            columns = 0
    return (columns or 80) - 2  # argparse leaves two columns free


def argv_safe(text: str) -> str:
    """``text`` made fit for argv and the environment: each NUL becomes U+FFFD.

    Everything else, newlines and invalid UTF-8 (as surrogate escapes) included, is
    passed on unchanged: a notification command gets the message as it was.
    """
    return text.replace("\0", "\ufffd") if "\0" in text else text


_HEX = frozenset("0123456789abcdefABCDEF")


def ip_text(value: str) -> str:
    """ssl spells ::1 as 0:0:0:0:0:0:0:1; show ipaddress's compressed form, without
    its import (~3 M instructions) for eight plain groups; IPv4-mapped addresses (their
    form differs between Python versions) and anything else still go through it."""
    if ":" not in value:
        return value
    groups = value.split(":")
    if len(groups) == 8 and all(0 < len(g) <= 4 and _HEX.issuperset(g) for g in groups):
        words = [int(g, 16) for g in groups]
        if words[:6] != [0, 0, 0, 0, 0, 0xFFFF]:
            return _compressed(words)
    import ipaddress

    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _compressed(words: list[int]) -> str:
    """RFC 5952, as ipaddress does it: the first longest run of 2+ zero groups is ``::``."""
    best_start, best_len, start = -1, 0, -1
    for index, word in enumerate([*words, 1]):  # the sentinel ends a trailing run
        if word == 0 and start < 0:
            start = index
        elif word != 0 and start >= 0:
            if index - start > best_len:
                best_start, best_len = start, index - start
            start = -1
    texts = [format(word, "x") for word in words]
    if best_len < 2:
        return ":".join(texts)
    return f"{':'.join(texts[:best_start])}::{':'.join(texts[best_start + best_len :])}"
