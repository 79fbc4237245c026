"""Which command comes next: a pure function of the plan and of what is known so far.

Kept apart from the handshake so that the whole decision can be read, and tested, as
one table (tests/test_protocol_next.py).
"""

from __future__ import annotations

import enum

from .records import Plan


class Next(enum.Enum):
    CAPABILITY = "CAPABILITY"
    STARTTLS = "STARTTLS"
    LOGIN = "login"  # AUTHENTICATE PLAIN or LOGIN, see login.py
    MAILBOXES = "mailboxes"  # STATUS, EXAMINE and GETQUOTAROOT of each mailbox
    LOGOUT = "LOGOUT"
    NO_STARTTLS = "STARTTLS is not advertised"  # a failure, not a command


class Known:
    """What the handshake knows when it decides; all it decides on."""

    __slots__ = (
        "authenticated",
        "caps",
        "caps_after_login",
        "mailboxes_planned",
        "tls_done",
        "work_left",
    )

    def __init__(
        self,
        *,
        tls_done: bool = False,
        caps: tuple[str, ...] | None = None,
        authenticated: bool = False,
        caps_after_login: bool = False,
        mailboxes_planned: bool = False,
        work_left: bool = False,
    ) -> None:
        self.tls_done = tls_done  # STARTTLS finished (always False without --starttls)
        self.caps = caps  # the capabilities of the current stage, None if not yet known
        self.authenticated = authenticated  # logged in, or PREAUTH
        self.caps_after_login = caps_after_login  # the authenticated stage's list is known
        self.mailboxes_planned = mailboxes_planned  # the mailbox commands were planned
        self.work_left = work_left  # ... and some of them are still to be sent


def next_command(plan: Plan, known: Known) -> Next:
    if plan.starttls and not known.tls_done:
        if known.caps is None:
            return Next.CAPABILITY
        return Next.STARTTLS if "STARTTLS" in known.caps else Next.NO_STARTTLS
    logging_in = plan.credentials is not None and not known.authenticated
    if known.caps is None and (plan.want_capabilities or logging_in):
        return Next.CAPABILITY
    if logging_in:
        return Next.LOGIN
    if known.mailboxes_planned:
        return Next.MAILBOXES if known.work_left else Next.LOGOUT
    if not plan.mailboxes:
        return Next.LOGOUT
    if plan.quota and known.authenticated and not known.caps_after_login:
        # Servers may offer more (QUOTA) once logged in; ask unless login told us.
        return Next.CAPABILITY
    return Next.MAILBOXES
