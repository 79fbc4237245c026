"""nagiosplugin glue, along its seams: Resource -> Metrics -> Contexts -> Summary.

``resource`` runs the probe and yields metrics, ``contexts`` judges them, ``report``
writes the status line and the -v detail. This package is the only nagiosplugin user.
"""

from __future__ import annotations

import math

import nagiosplugin

from ..options import Options
from .contexts import build_contexts
from .report import ImapCheck, ImapSummary
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
    """Run the check; exits the process with the plugin's exit code."""
    check = build(options)
    try:
        # A whole-second backstop only: the transport's deadline ends every step first.
        check.main(verbose=options.verbose, timeout=math.ceil(options.target.timeout) + 2)
    except nagiosplugin.Timeout:
        raise InternalTimeout(
            f"check aborted after {math.ceil(options.target.timeout) + 2}s"
        ) from None
