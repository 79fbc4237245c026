"""Files named by options, opened so that no path can make us hang, grow or follow a link.

Plugins run as root (monit's default) with paths typed by people. Every file option
goes through ``read_regular``: ``O_NOFOLLOW | O_NONBLOCK`` (a symlink or a FIFO cannot
redirect or block us), ``fstat`` on the descriptor (only a regular file is read, and it
is the file we opened), and a bounded read.
"""

from __future__ import annotations

import os
import stat

KIB = 1024
MIB = 1024 * KIB


class FileRefused(Exception):
    """The path is not a regular file we may read; the message says why, in one line."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str, flags: int = os.O_RDONLY) -> tuple[int, os.stat_result]:
    """An open descriptor of a regular file (and its stat), or FileRefused."""
    flags |= os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            real = os.path.realpath(path)
            raise FileRefused(f"a symbolic link (to {real}): name the file itself") from None
        raise FileRefused(exc.strerror or str(exc)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FileRefused(f"{kind(info.st_mode)}, not a regular file")
    return fd, info


def read_regular(path: str, limit: int) -> tuple[bytes, os.stat_result]:
    """At most ``limit`` bytes of a regular file; FileRefused if it is larger."""
    fd, info = open_regular(path)
    try:
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(64 * KIB, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise FileRefused(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if size > limit:
        raise FileRefused(f"larger than {_size(limit)}")
    return b"".join(chunks), info


def first_line(path: str, limit: int) -> tuple[bytes, os.stat_result]:
    """The first line (without its end) of a file, reading at most ``limit`` bytes."""
    fd, info = open_regular(path)
    try:
        data = os.read(fd, limit)
    except OSError as exc:
        raise FileRefused(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    line, newline, _ = data.partition(b"\n")
    if not newline and len(data) >= limit:
        raise FileRefused(f"a first line longer than {_size(limit)}")
    return line.rstrip(b"\r"), info


def private_problem(info: os.stat_result) -> str | None:
    """Why a secret file is not private (as ssh says of keys), or None if it is."""
    if info.st_mode & 0o006:
        mode = stat.S_IMODE(info.st_mode)
        return f"accessible by others (mode {mode:04o}): chmod o-rwx it"
    owner = info.st_uid
    if owner not in (0, os.geteuid()):
        return f"owned by another user (uid {owner}): chown it to the user running the check"
    return None


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit >= MIB else f"{limit // KIB} KiB"
