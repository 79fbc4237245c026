"""nagiosplugin glue, along its seams: Resource -> Metrics -> Contexts -> Summary.

``resource`` runs the probe and yields metrics, ``contexts`` judges them, ``report``
writes the status line and the -v detail. This package is the only nagiosplugin user.
"""

from __future__ import annotations

import math
import sys

import nagiosplugin
from nagiosplugin.platform import with_timeout

from ..options import Options
from .contexts import build_contexts
from .report import ImapCheck, ImapSummary, render
from .resource import Imap


class InternalTimeout(Exception):
    """nagiosplugin's SIGALRM backstop fired: our own deadline should always come first."""


def build(options: Options) -> nagiosplugin.Check:
    resource = Imap(options)
    check = ImapCheck(
        resource, *build_contexts(options, resource.labels), ImapSummary(options, resource)
    )
    # After construction: nagiosplugin 1.3.2 (Debian 12) has no name= keyword.
    check.name = "IMAP"
    return check


def run(options: Options) -> None:
    """Run the check and exit with the plugin's exit code.

    nagiosplugin judges (resource, contexts, summary); the output is ours: its Runtime
    moves the perfdata to the last line at -v, where NRPE's 1 KiB cut loses it.
    """
    check = build(options)
    seconds = math.ceil(options.target.timeout) + 2
    try:
        # A whole-second backstop only: the transport's deadline ends every step first.
        with_timeout(seconds, check)
    except nagiosplugin.Timeout:
        raise InternalTimeout(f"check aborted after {seconds}s") from None
    sys.stdout.write(render(check, options.verbose))
    sys.stdout.flush()
    sys.exit(check.exitcode)
