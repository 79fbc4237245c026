"""Make untrusted text safe for one line of plugin output."""

from __future__ import annotations

LIMIT = 160


def sanitize(data: str | bytes, limit: int = LIMIT) -> str:
    """No control characters, no ``|`` (it starts perfdata), no newlines, bounded length.

    Invalid UTF-8 becomes U+FFFD; anything unprintable becomes ``?``; ``|`` becomes ``/``.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if len(text) > limit * 2:
        text = text[: limit * 2]  # bound the work before cleaning
    cleaned = "".join(
        "/" if ch == "|" else ch if ch == " " or ch.isprintable() else "?" for ch in text
    )
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 3].rstrip() + "..."
    return cleaned
