"""Nagios ranges as nagiosplugin reads them, checked while the command line is parsed."""

from __future__ import annotations

import nagiosplugin

from ..options import UsageError


def check_range(text: str, option: str) -> str:
    """``text`` if nagiosplugin accepts it; empty, ``@`` and ``@:`` are usage errors."""
    if text.strip() in ("", "@", "@:", ":"):
        raise UsageError(f"{option}: invalid range {text!r}")
    try:
        nagiosplugin.Range(text)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{option}: invalid range {text!r} ({exc})") from None
    return text
