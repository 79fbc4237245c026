"""Entry point of check_imap: the version at once, else parse the options and run the check.

Start-up is part of every check's cost, so this module imports nothing heavy:
``--version`` never loads argparse, ``--help`` loads argparse but neither ssl nor
nagiosplugin, and a check imports what its mode needs (see notes on performance).
"""

from __future__ import annotations

import sys

from . import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

UNKNOWN = 3
PROG = "check_imap"
VERSION_FLAGS = (["-V"], ["--version"])


def main(argv: list[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else argv
    if args in VERSION_FLAGS:
        # What argparse's version action prints, without importing argparse (~5 ms).
        sys.stdout.write(f"{PROG} {__version__}\n")
        sys.stdout.flush()
        sys.exit(UNKNOWN)
    # Server text may hold anything; never die on printing it in a C locale.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    from .cmdline import parse
    from .options import UsageError

    try:
        options = parse(argv)
        from . import check  # nagiosplugin and ssl only once there is a check to run

        check.run(options)
    except UsageError as exc:
        from .text import sanitize

        sys.stdout.write(f"IMAP UNKNOWN - {sanitize(str(exc), 300)} (see {PROG} --help)\n")
        sys.stdout.flush()
    sys.exit(UNKNOWN)
