"""Make untrusted text safe for one line of plugin output; the width of --help."""

from __future__ import annotations

import os
import sys

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
