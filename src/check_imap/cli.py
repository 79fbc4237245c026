"""Entry point of check_imap: the version at once, else parse the options and run the check.

Start-up is part of every check's cost, so this module imports nothing heavy:
``--version`` never loads argparse, nor does a bare ``--help`` when the text that
docs/generate.py wrote from the parser (helptext.py) is what argparse would print; a
check imports what its mode needs (see docs/performance.md).

Every way out is one line and a plugin exit code. A usage error is ``IMAP UNKNOWN -
...``; anything unforeseen reaches the last-resort handler below, which prints one
sanitised UNKNOWN line and never a traceback (tests prove the bad-input corpus never
gets there).
"""

from __future__ import annotations

import sys

from . import PROG, UNKNOWN, __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

VERSION_FLAGS = (["-V"], ["--version"])
HELP_FLAGS = (["-h"], ["--help"])


def main(argv: list[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else argv
    if args in VERSION_FLAGS:
        # What argparse's version action prints, without importing argparse (~5 ms).
        sys.stdout.write(f"{PROG} {__version__}\n")
        sys.stdout.flush()
        sys.exit(UNKNOWN)
    if args in HELP_FLAGS:
        _prebuilt_help()
    # Server text may hold anything; never die on printing it in a C locale.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        from .cmdline import parse
        from .options import UsageError

        try:
            options = parse(args)
            from . import check  # nagiosplugin and ssl only once there is a check to run

            check.run(options)
        except UsageError as exc:
            _line(f"IMAP UNKNOWN - {_clean(str(exc))} (see {PROG} --help)")
    except ImportError as exc:  # a broken install: say which module, in one line
        _line(f"IMAP UNKNOWN - cannot import {exc.name or exc}: check the installation")
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # the last resort: one line, never a traceback
        _line(f"IMAP UNKNOWN - internal error: {type(exc).__name__}: {_clean(str(exc))}")
    sys.exit(UNKNOWN)


def _prebuilt_help() -> None:
    """Print the shipped --help and exit, if argparse would lay it out the same way.

    Building the 55-option parser only to format it is most of --help's cost. The text
    is argparse's own at one width on one Python version (tests/test_docs.py checks it
    against the live parser); anywhere else the parser formats it as usual.
    """
    from .helptext import HELP, PYTHON, WIDTH
    from .text import help_width

    if sys.version_info[:2] == PYTHON and help_width() == WIDTH:
        sys.stdout.write(HELP)
        sys.stdout.flush()
        sys.exit(UNKNOWN)


def _clean(text: str) -> str:
    from .text import sanitize

    return sanitize(text, 300)


def _line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
